//! The entropy device's event handler: a queue notification fills the offered buffers.

use super::Rng;
use event_manager::{EventOps, Events, MutEventSubscriber};
use vmm_sys_util::epoll::EventSet;

impl MutEventSubscriber for Rng {
    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        let _ = self.queue_evt.read();
        self.process_queue();
    }

    fn init(&mut self, ops: &mut EventOps) {
        let _ = ops.add(Events::new(&self.queue_evt, EventSet::IN));
    }
}
