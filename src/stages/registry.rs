//! The registry: stage names to stages.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use super::stage::{DynStage, Erased, Stage};

/// The stages a workflow may use, by name.
#[derive(Clone, Default)]
pub struct Registry {
    stages: BTreeMap<&'static str, Arc<dyn DynStage>>,
}

impl Registry {
    /// An empty registry (tests register their own stages).
    pub fn new() -> Self {
        Registry::default()
    }

    /// The stages cgloop ships.
    pub fn builtin() -> Self {
        Registry::new()
            .register::<super::fg_sample::FgSample>()
            .register::<super::fit_potential::FitPotential>()
            .register::<super::cg_sample::CgSample>()
            .register::<super::cg_compare::CgCompare>()
            .register::<super::ramachandran::Ramachandran>()
            .register::<super::import_trajectory::ImportTrajectory>()
            .register::<super::train_map::TrainMap>()
            .register::<super::map_forces::MapForces>()
            .register::<super::train_flow::TrainFlow>()
            .register::<super::refine_flow::RefineFlow>()
            .register::<super::backmap::Backmap>()
            .register::<super::reweight::Reweight>()
            .register::<super::compare::Compare>()
            .register::<super::protein_observables::ProteinObservables>()
            .register::<super::protein_compare::ProteinCompare>()
            .register::<super::transitions::TransitionsStage>()
            .register::<super::committor::CommittorStage>()
            .register::<super::committor_test::CommittorTest>()
            .register::<super::committor_rate::CommittorRate>()
            .register::<super::committor_ffs::CommittorFfs>()
    }

    /// Adds a stage; a second stage of the same name replaces the first.
    pub fn register<S: Stage>(mut self) -> Self {
        self.stages.insert(
            S::NAME,
            Arc::new(Erased::<S>(PhantomData)) as Arc<dyn DynStage>,
        );
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn DynStage>> {
        self.stages.get(name)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.stages.keys().copied().collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn DynStage>> {
        self.stages.values()
    }
}
