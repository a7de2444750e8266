//! The local executor: nodes compute on threads of this process, up to `jobs` at once.
//!
//! A node's own parallelism is rayon's (its MD windows, chains, batches). With one job
//! that is the global pool. With several, each node gets a pool of its own, as large as
//! the global one, which the `cgloop` binary sizes to the CPUs divided by the jobs
//! (`nn::runtime::prepare_process`, where candle's products take the same count): on a
//! shared pool nodes side by side would share one node's share of the machine. Results
//! do not depend on the pool's size (stages split work by data, never by thread, and
//! products are the same bytes for any thread count, tests/matmul_threads.rs), so this
//! changes time only.

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
    /// The size of each node's own pool; none: the global pool (one job).
    threads_per_node: Option<usize>,
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
        let jobs = jobs.max(1);
        let threads_per_node = (jobs > 1).then(rayon::current_num_threads);
        LocalExecutor {
            scope,
            workflow,
            keyed,
            store,
            jobs,
            threads_per_node,
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
            let threads = self.threads_per_node;
            self.scope.spawn(move || {
                let compute = || compute_node(workflow, s.index, keyed, store, s.force, progress);
                let pool = threads.and_then(|n| {
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(n)
                        .thread_name(move |i| format!("cgloop-node-{}-{i}", s.index))
                        .build()
                        .ok()
                });
                // A pool that cannot be built leaves the node on the global one.
                let result = match pool {
                    Some(pool) => pool.install(compute),
                    None => compute(),
                };
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
