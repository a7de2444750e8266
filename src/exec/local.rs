//! The local executor: nodes compute on threads of this process, up to `jobs` at once
//! (each node's own parallelism is rayon's, shared by all).

use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::Scope;

use super::executor::{Executor, Submission};
use super::node::compute_node;
use super::plan::KeyedNode;
use super::run::Outcome;
use super::store::Store;
use crate::workflow::Workflow;

pub struct LocalExecutor<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    workflow: &'env Workflow,
    keyed: &'env [KeyedNode],
    store: &'env Store,
    jobs: usize,
    progress: bool,
    in_flight: usize,
    tx: Sender<(usize, Outcome)>,
    rx: Receiver<(usize, Outcome)>,
}

impl<'scope, 'env> LocalExecutor<'scope, 'env> {
    pub fn new(
        scope: &'scope Scope<'scope, 'env>,
        workflow: &'env Workflow,
        keyed: &'env [KeyedNode],
        store: &'env Store,
        jobs: usize,
        progress: bool,
    ) -> Self {
        let (tx, rx) = channel();
        LocalExecutor {
            scope,
            workflow,
            keyed,
            store,
            jobs: jobs.max(1),
            progress,
            in_flight: 0,
            tx,
            rx,
        }
    }
}

impl Executor for LocalExecutor<'_, '_> {
    fn capacity(&self) -> usize {
        self.jobs
    }

    fn submit(&mut self, batch: Vec<Submission>) {
        for s in batch {
            self.in_flight += 1;
            let tx = self.tx.clone();
            let (workflow, keyed, store, progress) =
                (self.workflow, self.keyed, self.store, self.progress);
            self.scope.spawn(move || {
                let result = compute_node(workflow, s.index, keyed, store, s.force, progress);
                let _ = tx.send((s.index, result));
            });
        }
    }

    fn wait(&mut self) -> Vec<(usize, Outcome)> {
        if self.in_flight == 0 {
            return Vec::new();
        }
        let mut done = vec![self.rx.recv().expect("a worker reports before it ends")];
        while let Ok(more) = self.rx.try_recv() {
            done.push(more);
        }
        self.in_flight -= done.len();
        done
    }
}
