//! Terminal input for the serial console: bytes read from stdin go to the UART's FIFO.

use super::SerialDevice;
use event_manager::{EventOps, Events, MutEventSubscriber};
use std::io::Read;
use std::sync::{Arc, Mutex};
use vmm_sys_util::epoll::EventSet;

/// Reads stdin (a terminal) into the serial device.
pub struct SerialInput {
    pub serial: Arc<Mutex<SerialDevice>>,
}

impl MutEventSubscriber for SerialInput {
    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let mut buf = [0u8; 64];
        let n = std::io::stdin().read(&mut buf).unwrap_or(0);
        if n == 0 || events.event_set().contains(EventSet::HANG_UP) {
            let _ = ops.remove(events);
            return;
        }
        self.serial
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .enqueue(&buf[..n]);
    }

    fn init(&mut self, ops: &mut EventOps) {
        // Not every stdin can be polled (a regular file cannot): then there is no input.
        let _ = ops.add(Events::new(&std::io::stdin(), EventSet::IN));
    }
}
