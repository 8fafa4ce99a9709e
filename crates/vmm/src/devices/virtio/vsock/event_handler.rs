//! The vsock device's event handler: queue notifications, the host socket's listener and
//! every connection's stream. Streams are watched only while they may send (the guest has
//! credit and buffers), so a level-triggered readable stream never spins.

use super::Vsock;
use event_manager::{EventOps, Events, MutEventSubscriber};
use std::os::fd::AsRawFd;
use vmm_sys_util::epoll::EventSet;

impl Vsock {
    /// Makes the watched streams match what the connections want.
    fn sync(&mut self, ops: &mut EventOps) {
        for c in self.closed.drain(..) {
            if c.watched {
                let _ = ops.remove(Events::new(&c.stream, EventSet::IN));
            }
        }
        for c in self.conns.values_mut() {
            if c.want_watch != c.watched {
                let ev = Events::new(&c.stream, EventSet::IN);
                let ok = if c.want_watch {
                    ops.add(ev)
                } else {
                    ops.remove(ev)
                };
                if ok.is_ok() {
                    c.watched = c.want_watch;
                }
            }
        }
    }
}

impl MutEventSubscriber for Vsock {
    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let fd = events.fd();
        if fd == self.tx_evt.as_raw_fd() {
            let _ = self.tx_evt.read();
            self.process_tx();
        } else if fd == self.rx_evt.as_raw_fd() {
            let _ = self.rx_evt.read();
            self.process_rx();
        } else if fd == self.ev_evt.as_raw_fd() {
            let _ = self.ev_evt.read();
        } else if fd == self.listener.as_raw_fd() {
            self.accept();
        } else if let Some((key, _)) = self.stream_fds().into_iter().find(|(_, f)| *f == fd) {
            self.stream_readable(key);
        }
        self.sync(ops);
    }

    fn init(&mut self, ops: &mut EventOps) {
        let _ = ops.add(Events::new(&self.rx_evt, EventSet::IN));
        let _ = ops.add(Events::new(&self.tx_evt, EventSet::IN));
        let _ = ops.add(Events::new(&self.ev_evt, EventSet::IN));
        let _ = ops.add(Events::new(&self.listener, EventSet::IN));
    }
}
