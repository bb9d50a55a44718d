//! The two graphs as data: nodes, edges and the conditions on them.
//!
//! [`crate::next`] never hard-codes a transition: when a node finishes it
//! asks [`Graph::follow`] for the first edge out of that node whose
//! [`Condition`] holds, and before anything else it checks the graph's
//! interrupts (deadline, budget). Changing an edge is editing the tables in
//! [`Graph::simple`] and [`Graph::complex`]; `docs/WORKFLOWS.md` holds their
//! [`Graph::render`]ing, checked by a test.

use std::fmt;

use rootcause_diagnosis::{Mode, Phase};
use serde::{Deserialize, Serialize};

/// A step of the workflow. Each node but `start` and `conclude` is one
/// [`Phase`] of the diagnosis, so the state says where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Node {
    /// Received; nothing has run.
    Start,
    /// The coordinator plans a round: which agents, which questions.
    Plan,
    /// The planned agents run in parallel.
    Investigate,
    /// The coordinator weighs the round's evidence (complex graph).
    Evaluate,
    /// The coordinator writes ranked hypotheses and remediation.
    Synthesize,
    /// The diagnosis concludes; terminal.
    Conclude,
}

impl Node {
    /// Every node, in workflow order.
    pub const ALL: [Node; 6] = [
        Self::Start,
        Self::Plan,
        Self::Investigate,
        Self::Evaluate,
        Self::Synthesize,
        Self::Conclude,
    ];

    /// The phase a diagnosis is in while at this node.
    #[must_use]
    pub fn phase(self) -> Phase {
        match self {
            Self::Start => Phase::Intake,
            Self::Plan => Phase::Planning,
            Self::Investigate => Phase::Investigating,
            Self::Evaluate => Phase::Evaluating,
            Self::Synthesize => Phase::Synthesizing,
            Self::Conclude => Phase::Done,
        }
    }

    /// The node a diagnosis in `phase` is at.
    #[must_use]
    pub fn of_phase(phase: Phase) -> Self {
        match phase {
            Phase::Intake => Self::Start,
            Phase::Planning => Self::Plan,
            Phase::Investigating => Self::Investigate,
            Phase::Evaluating => Self::Evaluate,
            Phase::Synthesizing => Self::Synthesize,
            Phase::Done => Self::Conclude,
        }
    }

    /// The name used in the rendering and the docs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Plan => "plan",
            Self::Investigate => "investigate",
            Self::Evaluate => "evaluate",
            Self::Synthesize => "synthesize",
            Self::Conclude => "conclude",
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A condition on an edge, evaluated on the state by [`Facts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Always holds; the fallback edge of every node.
    Always,
    /// The top hypothesis is at or above the confidence threshold and at
    /// least `min_agreeing_kinds` independent evidence kinds support it.
    Confident,
    /// Fewer rounds than the limit have been planned.
    RoundsLeft,
    /// The current plan asks at least one agent something.
    PlanHasSteps,
    /// The diagnosis deadline has passed.
    DeadlinePassed,
    /// The diagnosis spent its token budget.
    BudgetSpent,
}

impl Condition {
    /// The name used in the rendering and the docs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::Confident => "confident",
            Self::RoundsLeft => "rounds_left",
            Self::PlanHasSteps => "plan_has_steps",
            Self::DeadlinePassed => "deadline_passed",
            Self::BudgetSpent => "budget_spent",
        }
    }

    /// Whether it holds for these facts.
    #[must_use]
    pub fn holds(self, facts: &Facts) -> bool {
        match self {
            Self::Always => true,
            Self::Confident => facts.confident,
            Self::RoundsLeft => facts.rounds_left,
            Self::PlanHasSteps => facts.plan_has_steps,
            Self::DeadlinePassed => facts.deadline_passed,
            Self::BudgetSpent => facts.budget_spent,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the conditions are evaluated on, computed once per decision from
/// the state, the clock and the configuration (see `crate::decide`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    /// See [`Condition::Confident`].
    pub confident: bool,
    /// See [`Condition::RoundsLeft`].
    pub rounds_left: bool,
    /// See [`Condition::PlanHasSteps`].
    pub plan_has_steps: bool,
    /// See [`Condition::DeadlinePassed`].
    pub deadline_passed: bool,
    /// See [`Condition::BudgetSpent`].
    pub budget_spent: bool,
}

/// A transition taken when `from` has finished and `when` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    /// The node that finished.
    pub from: Node,
    /// The node to enter.
    pub to: Node,
    /// The condition; edges out of a node are tried in order.
    pub when: Condition,
}

/// A transition from any running node, checked before the node's own work:
/// it does not wait for the node to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interrupt {
    /// The condition.
    pub when: Condition,
    /// The node to enter.
    pub to: Node,
}

/// A workflow graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Graph {
    /// Which graph this is.
    pub mode: Mode,
    /// Edges, tried in order per node.
    pub edges: Vec<Edge>,
    /// Checked first, from every node but `conclude`.
    pub interrupts: Vec<Interrupt>,
}

/// A defect in a graph table, found by [`Graph::check`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GraphDefect {
    /// A node other than `conclude` has no `always` edge last, so a
    /// diagnosis could stop there forever.
    #[error("node {node} has no `always` edge last; a diagnosis could stall there")]
    NoFallback {
        /// The node.
        node: Node,
    },
    /// A node cannot be reached from `start`.
    #[error("node {node} has edges but cannot be reached from start")]
    Unreachable {
        /// The node.
        node: Node,
    },
    /// An edge leaves `conclude`, which is terminal.
    #[error("an edge leaves conclude, which is terminal")]
    LeavesConclude,
}

fn edge(from: Node, to: Node, when: Condition) -> Edge {
    Edge { from, to, when }
}

/// Deadline and budget end any diagnosis, whatever it is doing.
fn interrupts() -> Vec<Interrupt> {
    vec![
        Interrupt {
            when: Condition::DeadlinePassed,
            to: Node::Conclude,
        },
        Interrupt {
            when: Condition::BudgetSpent,
            to: Node::Conclude,
        },
    ]
}

impl Graph {
    /// Coordinator plans, the agents run once in parallel, the coordinator
    /// synthesises.
    #[must_use]
    pub fn simple() -> Self {
        use Condition::{Always, PlanHasSteps};
        use Node::{Conclude, Investigate, Plan, Start, Synthesize};
        Self {
            mode: Mode::Simple,
            edges: vec![
                edge(Start, Plan, Always),
                edge(Plan, Investigate, PlanHasSteps),
                edge(Plan, Synthesize, Always),
                edge(Investigate, Synthesize, Always),
                edge(Synthesize, Conclude, Always),
            ],
            interrupts: interrupts(),
        }
    }

    /// Rounds: plan, investigate, evaluate; conclude when confident with
    /// agreeing evidence, else plan follow-up questions while rounds are
    /// left, else conclude with partial results.
    #[must_use]
    pub fn complex() -> Self {
        use Condition::{Always, Confident, PlanHasSteps, RoundsLeft};
        use Node::{Conclude, Evaluate, Investigate, Plan, Start, Synthesize};
        Self {
            mode: Mode::Complex,
            edges: vec![
                edge(Start, Plan, Always),
                edge(Plan, Investigate, PlanHasSteps),
                edge(Plan, Synthesize, Always),
                edge(Investigate, Evaluate, Always),
                edge(Evaluate, Synthesize, Confident),
                edge(Evaluate, Plan, RoundsLeft),
                edge(Evaluate, Synthesize, Always),
                edge(Synthesize, Conclude, Always),
            ],
            interrupts: interrupts(),
        }
    }

    /// The graph of a mode.
    #[must_use]
    pub fn of(mode: Mode) -> Self {
        match mode {
            Mode::Simple => Self::simple(),
            Mode::Complex => Self::complex(),
        }
    }

    /// The first edge out of `from` whose condition holds.
    #[must_use]
    pub fn follow(&self, from: Node, facts: &Facts) -> Option<Edge> {
        self.edges
            .iter()
            .copied()
            .find(|e| e.from == from && e.when.holds(facts))
    }

    /// The first interrupt that holds.
    #[must_use]
    pub fn interrupt(&self, facts: &Facts) -> Option<Interrupt> {
        self.interrupts
            .iter()
            .copied()
            .find(|i| i.when.holds(facts))
    }

    /// Checks the table: every node with edges ends in an `always` edge,
    /// every such node is reachable from `start`, nothing leaves `conclude`.
    ///
    /// # Errors
    /// The defects found, all of them.
    pub fn check(&self) -> Result<(), Vec<GraphDefect>> {
        let mut defects = Vec::new();
        let from_nodes: Vec<Node> = Node::ALL
            .into_iter()
            .filter(|n| self.edges.iter().any(|e| e.from == *n))
            .collect();
        if from_nodes.contains(&Node::Conclude) {
            defects.push(GraphDefect::LeavesConclude);
        }
        for node in from_nodes.iter().copied().filter(|n| *n != Node::Conclude) {
            let last = self.edges.iter().rev().find(|e| e.from == node);
            if last.is_none_or(|e| e.when != Condition::Always) {
                defects.push(GraphDefect::NoFallback { node });
            }
        }
        let mut reached = vec![Node::Start];
        let mut i = 0;
        while let Some(n) = reached.get(i).copied() {
            for e in self.edges.iter().filter(|e| e.from == n) {
                if !reached.contains(&e.to) {
                    reached.push(e.to);
                }
            }
            i += 1;
        }
        for node in from_nodes {
            if !reached.contains(&node) {
                defects.push(GraphDefect::Unreachable { node });
            }
        }
        if defects.is_empty() {
            Ok(())
        } else {
            Err(defects)
        }
    }

    /// The graph as text, one edge a line (`plan -> investigate when
    /// plan_has_steps`), interrupts as `* -> conclude when ...`. This is
    /// what `docs/WORKFLOWS.md` shows.
    #[must_use]
    pub fn render(&self) -> String {
        let mode = match self.mode {
            Mode::Simple => "simple",
            Mode::Complex => "complex",
        };
        let mut out = format!("graph {mode}\n");
        for e in &self.edges {
            out.push_str(&format!("  {} -> {} when {}\n", e.from, e.to, e.when));
        }
        for i in &self.interrupts {
            out.push_str(&format!("  * -> {} when {}\n", i.to, i.when));
        }
        out
    }
}
