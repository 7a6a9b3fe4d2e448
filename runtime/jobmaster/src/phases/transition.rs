//! Typed transitions: a phase can only name a next phase it has a `TransitionTo` for, so the
//! table of allowed transitions (`mod.rs`) is checked by the compiler. The constructor is
//! private to this module: the phases cannot build a `Transition` another way.

use super::{Ending, Phase};

/// `Self` may be followed by `T`.
pub trait TransitionTo<T> {}

/// What a phase hands on when it is done.
pub struct Transition(Option<Phase>);

impl Transition {
    pub fn to<F, T>(_from: &F, to: T) -> Transition
    where
        F: TransitionTo<T>,
        T: Into<Phase>,
    {
        Transition(Some(to.into()))
    }

    /// The job is over; only its last phase says so.
    pub fn done(_from: &Ending) -> Transition {
        Transition(None)
    }

    pub(super) fn next(self) -> Option<Phase> {
        self.0
    }
}
