//! The agent lifecycle of seed 004: Created → Initialized → Active ⇄ Suspended;
//! Active → Modified → Active; any state → Terminated (final). [`AgentState::apply`] is the one
//! transition function; everything else is an illegal transition with a reason.

use serde::{Deserialize, Serialize};

/// Where an agent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Created,
    Initialized,
    /// Takes work.
    Active,
    /// Takes no new work; running steps finish. Resumable.
    Suspended,
    /// A new definition is staged; `apply` makes it current.
    Modified,
    /// Final.
    Terminated,
}

/// What an owner (or the sentinel) asks of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleAction {
    Initialize,
    Activate,
    Suspend,
    Resume,
    Modify,
    Apply,
    Terminate,
}

impl LifecycleAction {
    pub const ALL: [Self; 7] = [
        Self::Initialize,
        Self::Activate,
        Self::Suspend,
        Self::Resume,
        Self::Modify,
        Self::Apply,
        Self::Terminate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initialize => "initialize",
            Self::Activate => "activate",
            Self::Suspend => "suspend",
            Self::Resume => "resume",
            Self::Modify => "modify",
            Self::Apply => "apply",
            Self::Terminate => "terminate",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// An action the current state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} an agent that is {}; allowed now: {}", .action.as_str(), .from.as_str(), allowed_list(*.from))]
pub struct LifecycleError {
    pub from: AgentState,
    pub action: LifecycleAction,
}

fn allowed_list(from: AgentState) -> String {
    let allowed: Vec<&str> = LifecycleAction::ALL
        .iter()
        .filter(|a| from.apply(**a).is_ok())
        .map(|a| a.as_str())
        .collect();
    if allowed.is_empty() { "nothing (terminated is final)".into() } else { allowed.join(", ") }
}

impl AgentState {
    pub const ALL: [Self; 6] = [
        Self::Created,
        Self::Initialized,
        Self::Active,
        Self::Suspended,
        Self::Modified,
        Self::Terminated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Initialized => "initialized",
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Modified => "modified",
            Self::Terminated => "terminated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The state after `action`, or why it is not allowed.
    pub fn apply(self, action: LifecycleAction) -> Result<Self, LifecycleError> {
        use AgentState::*;
        use LifecycleAction::*;
        match (self, action) {
            (Created, Initialize) => Ok(Initialized),
            (Initialized, Activate) => Ok(Active),
            (Active, Suspend) => Ok(Suspended),
            (Suspended, Resume) => Ok(Active),
            (Active, Modify) => Ok(Modified),
            (Modified, Apply) => Ok(Active),
            (from, Terminate) if from != Terminated => Ok(Terminated),
            (from, action) => Err(LifecycleError { from, action }),
        }
    }

    /// Whether the agent takes new work.
    pub fn is_runnable(self) -> bool {
        self == Self::Active
    }
}

#[cfg(test)]
mod tests {
    use super::AgentState::*;
    use super::LifecycleAction::*;
    use super::*;

    /// Every (state, action) pair: the allowed ones and their target, everything else refused.
    #[test]
    fn transition_table() {
        let allowed = [
            (Created, Initialize, Initialized),
            (Initialized, Activate, Active),
            (Active, Suspend, Suspended),
            (Suspended, Resume, Active),
            (Active, Modify, Modified),
            (Modified, Apply, Active),
            (Created, Terminate, Terminated),
            (Initialized, Terminate, Terminated),
            (Active, Terminate, Terminated),
            (Suspended, Terminate, Terminated),
            (Modified, Terminate, Terminated),
        ];
        let mut checked = 0;
        for from in AgentState::ALL {
            for action in LifecycleAction::ALL {
                let expected = allowed.iter().find(|(f, a, _)| *f == from && *a == action);
                match (from.apply(action), expected) {
                    (Ok(to), Some((_, _, want))) => assert_eq!(to, *want, "{from:?} {action:?}"),
                    (Err(e), None) => {
                        assert_eq!((e.from, e.action), (from, action));
                        assert!(e.to_string().contains("cannot"), "{e}");
                    }
                    (got, want) => panic!("{from:?} {action:?}: got {got:?}, want {want:?}"),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 42);
    }

    #[test]
    fn errors_say_what_is_allowed() {
        let e = Suspended.apply(Modify).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot modify an agent that is suspended; allowed now: resume, terminate"
        );
        let e = Terminated.apply(Resume).unwrap_err();
        assert!(e.to_string().ends_with("nothing (terminated is final)"));
        for s in AgentState::ALL {
            assert_eq!(AgentState::parse(s.as_str()), Some(s));
        }
        assert!(Active.is_runnable() && !Suspended.is_runnable());
    }
}
