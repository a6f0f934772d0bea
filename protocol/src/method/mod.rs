//! Every method of every class, as structs with the spec's fields, and
//! the `Method` enum that a method frame decodes to.
//!
//! Field names follow the spec in snake_case, with `type` as `kind` and
//! `nowait` as `no_wait`. Reserved fields (`ticket`, `reserved-1`,
//! `insist`, `known-hosts`, `out-of-band`...) are not in the structs; they
//! are written as zero/empty/false and ignored on decode. Methods left
//! without fields are unit variants of [`Method`].

#[macro_use]
mod macros;
mod basic;
mod channel;
mod confirm;
mod connection;
mod exchange;
mod queue;

use bytes::{BufMut, Bytes, BytesMut};
use nom::number::complete::be_u16;

use crate::error::DecodeError;
use crate::types::{LongStr, ShortStr};
use crate::wire::{Reader, Wire, Writer};

pub use basic::*;
pub use channel::*;
pub use confirm::*;
pub use connection::*;
pub use exchange::*;
pub use queue::*;

methods! {
    structs {
        ConnectionStart = 10, 10, "connection.start";
        ConnectionStartOk = 10, 11, "connection.start-ok";
        ConnectionSecure = 10, 20, "connection.secure";
        ConnectionSecureOk = 10, 21, "connection.secure-ok";
        ConnectionTune = 10, 30, "connection.tune";
        ConnectionTuneOk = 10, 31, "connection.tune-ok";
        ConnectionOpen = 10, 40, "connection.open";
        ConnectionClose = 10, 50, "connection.close";
        ConnectionBlocked = 10, 60, "connection.blocked";
        ConnectionUpdateSecret = 10, 70, "connection.update-secret";
        ChannelFlow = 20, 20, "channel.flow";
        ChannelFlowOk = 20, 21, "channel.flow-ok";
        ChannelClose = 20, 40, "channel.close";
        ExchangeDeclare = 40, 10, "exchange.declare";
        ExchangeDelete = 40, 20, "exchange.delete";
        ExchangeBind = 40, 30, "exchange.bind";
        ExchangeUnbind = 40, 40, "exchange.unbind";
        QueueDeclare = 50, 10, "queue.declare";
        QueueDeclareOk = 50, 11, "queue.declare-ok";
        QueueBind = 50, 20, "queue.bind";
        QueuePurge = 50, 30, "queue.purge";
        QueuePurgeOk = 50, 31, "queue.purge-ok";
        QueueDelete = 50, 40, "queue.delete";
        QueueDeleteOk = 50, 41, "queue.delete-ok";
        QueueUnbind = 50, 50, "queue.unbind";
        BasicQos = 60, 10, "basic.qos";
        BasicConsume = 60, 20, "basic.consume";
        BasicConsumeOk = 60, 21, "basic.consume-ok";
        BasicCancel = 60, 30, "basic.cancel";
        BasicCancelOk = 60, 31, "basic.cancel-ok";
        BasicPublish = 60, 40, "basic.publish";
        BasicReturn = 60, 50, "basic.return";
        BasicDeliver = 60, 60, "basic.deliver";
        BasicGet = 60, 70, "basic.get";
        BasicGetOk = 60, 71, "basic.get-ok";
        BasicAck = 60, 80, "basic.ack";
        BasicReject = 60, 90, "basic.reject";
        BasicRecoverAsync = 60, 100, "basic.recover-async";
        BasicRecover = 60, 110, "basic.recover";
        BasicNack = 60, 120, "basic.nack";
        ConfirmSelect = 85, 10, "confirm.select";
    }
    units {
        ConnectionOpenOk = 10, 41, "connection.open-ok" [ShortStr];
        ConnectionCloseOk = 10, 51, "connection.close-ok" [];
        ConnectionUnblocked = 10, 61, "connection.unblocked" [];
        ConnectionUpdateSecretOk = 10, 71, "connection.update-secret-ok" [];
        ChannelOpen = 20, 10, "channel.open" [ShortStr];
        ChannelOpenOk = 20, 11, "channel.open-ok" [LongStr];
        ChannelCloseOk = 20, 41, "channel.close-ok" [];
        ExchangeDeclareOk = 40, 11, "exchange.declare-ok" [];
        ExchangeDeleteOk = 40, 21, "exchange.delete-ok" [];
        ExchangeBindOk = 40, 31, "exchange.bind-ok" [];
        // 51, not 41: RabbitMQ's number for it.
        ExchangeUnbindOk = 40, 51, "exchange.unbind-ok" [];
        QueueBindOk = 50, 21, "queue.bind-ok" [];
        QueueUnbindOk = 50, 51, "queue.unbind-ok" [];
        BasicQosOk = 60, 11, "basic.qos-ok" [];
        BasicGetEmpty = 60, 72, "basic.get-empty" [ShortStr];
        BasicRecoverOk = 60, 111, "basic.recover-ok" [];
        ConfirmSelectOk = 85, 11, "confirm.select-ok" [];
        TxSelect = 90, 10, "tx.select" [];
        TxSelectOk = 90, 11, "tx.select-ok" [];
        TxCommit = 90, 20, "tx.commit" [];
        TxCommitOk = 90, 21, "tx.commit-ok" [];
        TxRollback = 90, 30, "tx.rollback" [];
        TxRollbackOk = 90, 31, "tx.rollback-ok" [];
    }
}

impl Method {
    /// [`Method::decode`] for a payload the caller gives up, which lets
    /// basic.publish keep it (see [`BasicPublish::decode_owned`]).
    #[inline(always)]
    pub(crate) fn decode_owned(payload: Bytes) -> Result<Method, DecodeError> {
        if payload.starts_with(&[0, 60, 0, 40]) {
            return BasicPublish::decode_owned(payload).map(Method::BasicPublish);
        }
        Method::decode(&payload)
    }

    /// Whether a content header and body frames follow this method.
    pub fn has_content(&self) -> bool {
        matches!(
            self,
            Method::BasicPublish(_)
                | Method::BasicReturn(_)
                | Method::BasicDeliver(_)
                | Method::BasicGetOk(_)
        )
    }
}
