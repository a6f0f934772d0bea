//! Class `channel` (20).

use crate::types::ShortStr;

method_struct! {
    /// `channel.flow`
    ChannelFlow {
        active: bool,
    }
}

method_struct! {
    /// `channel.flow-ok`
    ChannelFlowOk {
        active: bool,
    }
}

method_struct! {
    /// `channel.close`: `class_id`/`method_id` name the method that caused
    /// the close, or are 0.
    ChannelClose {
        reply_code: u16,
        reply_text: ShortStr,
        class_id: u16,
        method_id: u16,
    }
}
