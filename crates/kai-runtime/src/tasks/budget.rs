//! Per-task budgets: steps, tool calls, tokens, cost, wall time, spawn depth and review rounds.
//! A task that would exceed one stops with status `budget_exceeded` and a message naming it.
//! Nothing is spent while idle: budgets are checked before each step and each model call.

use serde::{Deserialize, Serialize};

/// Limits on one task. Unset fields take these defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskBudget {
    /// Steps in the plan and steps run (re-runs after review count).
    pub max_steps: u32,
    pub max_tool_calls: u32,
    /// Prompt + completion tokens over every model call of the task (planning included).
    pub max_tokens: u64,
    /// US dollars at the providers' prices; 0: no limit.
    pub max_cost_usd: f64,
    /// Seconds from submission to completion.
    pub max_wall_secs: u64,
    /// How deep tasks may spawn tasks.
    pub max_depth: u32,
    /// Times the reviewer may send one step back.
    pub max_reviews: u32,
}

impl Default for TaskBudget {
    fn default() -> Self {
        Self {
            max_steps: 25,
            max_tool_calls: 50,
            max_tokens: 200_000,
            max_cost_usd: 0.0,
            max_wall_secs: 1800,
            max_depth: 3,
            max_reviews: 2,
        }
    }
}

impl TaskBudget {
    /// Range checks with a message naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |f: &str, r: &str| Err(format!("budget.{f}: allowed {r}"));
        if !(1..=1000).contains(&self.max_steps) {
            return bad("max_steps", "1 to 1000");
        }
        if self.max_tool_calls > 10_000 {
            return bad("max_tool_calls", "0 to 10000");
        }
        if !(1..=100_000_000).contains(&self.max_tokens) {
            return bad("max_tokens", "1 to 100000000");
        }
        if !self.max_cost_usd.is_finite() || !(0.0..=100_000.0).contains(&self.max_cost_usd) {
            return bad("max_cost_usd", "0 to 100000 (0: no limit)");
        }
        if !(1..=7 * 24 * 3600).contains(&self.max_wall_secs) {
            return bad("max_wall_secs", "1 to 604800");
        }
        if self.max_depth > 10 {
            return bad("max_depth", "0 to 10");
        }
        if self.max_reviews > 10 {
            return bad("max_reviews", "0 to 10");
        }
        Ok(())
    }

    /// The first limit `used` has reached, as a message for the task's error.
    pub fn exceeded(&self, used: &Usage, elapsed_secs: u64) -> Option<String> {
        if used.steps > u64::from(self.max_steps) {
            return Some(format!(
                "the step budget is spent: {} of {} steps",
                used.steps, self.max_steps
            ));
        }
        if used.tool_calls > u64::from(self.max_tool_calls) {
            return Some(format!(
                "the tool-call budget is spent: {} of {}",
                used.tool_calls, self.max_tool_calls
            ));
        }
        if used.tokens >= self.max_tokens {
            return Some(format!(
                "the token budget is spent: {} of {} tokens",
                used.tokens, self.max_tokens
            ));
        }
        #[allow(clippy::cast_precision_loss)]
        let dollars = used.cost_micros as f64 / 1_000_000.0;
        if self.max_cost_usd > 0.0 && dollars >= self.max_cost_usd {
            return Some(format!(
                "the cost budget is spent: ${dollars:.4} of ${:.4}",
                self.max_cost_usd
            ));
        }
        if elapsed_secs >= self.max_wall_secs {
            return Some(format!(
                "the time budget is spent: {elapsed_secs} s of {} s",
                self.max_wall_secs
            ));
        }
        None
    }
}

/// What a task has used so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub steps: u64,
    pub tool_calls: u64,
    pub tokens: u64,
    pub cost_micros: u64,
}

impl Usage {
    pub fn of(task: &kai_store::TaskRow) -> Self {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Self {
            steps: n(task.used_steps),
            tool_calls: n(task.used_tool_calls),
            tokens: n(task.used_tokens),
            cost_micros: n(task.used_cost_micros),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_is_named_when_reached() {
        let b = TaskBudget { max_cost_usd: 1.0, ..TaskBudget::default() };
        assert_eq!(b.exceeded(&Usage::default(), 0), None);
        let cases = [
            (Usage { steps: 26, ..Usage::default() }, 0, "step budget"),
            (Usage { tool_calls: 51, ..Usage::default() }, 0, "tool-call budget"),
            (Usage { tokens: 200_000, ..Usage::default() }, 0, "token budget"),
            (Usage { cost_micros: 1_000_000, ..Usage::default() }, 0, "cost budget"),
            (Usage::default(), 1800, "time budget"),
        ];
        for (used, secs, needle) in cases {
            assert!(b.exceeded(&used, secs).unwrap().contains(needle), "{needle}");
        }
        assert!(TaskBudget { max_steps: 0, ..b }.validate().unwrap_err().contains("max_steps"));
        assert!(TaskBudget { max_cost_usd: f64::NAN, ..b }.validate().is_err());
        assert!(b.validate().is_ok());
    }
}
