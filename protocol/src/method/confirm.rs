//! Class `confirm` (85, RabbitMQ): publisher confirms.

method_struct! {
    /// `confirm.select`
    ConfirmSelect {
        no_wait: bool,
    }
}
