//! The net device's event handler: transmit-queue notifications, receive-queue notifications
//! (new buffers for a waiting frame) and a readable tap.

use super::Net;
use event_manager::{EventOps, Events, MutEventSubscriber};
use std::os::fd::AsRawFd;
use vmm_sys_util::epoll::EventSet;

impl Net {
    fn watch_tap(&mut self, ops: &mut EventOps, watch: bool) {
        if watch == self.tap_watched {
            return;
        }
        let ev = Events::new(&self.tap, EventSet::IN);
        let ok = if watch { ops.add(ev) } else { ops.remove(ev) };
        if ok.is_ok() {
            self.tap_watched = watch;
        }
    }
}

impl MutEventSubscriber for Net {
    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let fd = events.fd();
        if fd == self.tx_evt.as_raw_fd() {
            let _ = self.tx_evt.read();
            self.process_tx();
        } else if fd == self.rx_evt.as_raw_fd() {
            let _ = self.rx_evt.read();
            let watch = self.process_rx();
            self.watch_tap(ops, watch);
        } else if fd == self.tap.as_raw_fd() {
            let watch = self.process_rx();
            self.watch_tap(ops, watch);
        }
    }

    fn init(&mut self, ops: &mut EventOps) {
        let _ = ops.add(Events::new(&self.tx_evt, EventSet::IN));
        let _ = ops.add(Events::new(&self.rx_evt, EventSet::IN));
        self.tap_watched = ops.add(Events::new(&self.tap, EventSet::IN)).is_ok();
    }
}
