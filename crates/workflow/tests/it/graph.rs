//! The graph tables are well formed, and a broken one is caught.

use rootcause_diagnosis::Mode;
use rootcause_workflow::{Condition, Edge, Facts, Graph, GraphDefect, Node};

#[test]
fn both_graphs_are_well_formed() {
    assert_eq!(Graph::simple().check(), Ok(()));
    assert_eq!(Graph::complex().check(), Ok(()));
}

#[test]
fn a_node_without_a_fallback_edge_is_a_defect() {
    let mut g = Graph::complex();
    g.edges
        .retain(|e| !(e.from == Node::Evaluate && e.when == Condition::Always));
    g.edges.push(Edge {
        from: Node::Conclude,
        to: Node::Plan,
        when: Condition::Always,
    });
    let defects = g.check().unwrap_err();
    assert!(defects.contains(&GraphDefect::NoFallback {
        node: Node::Evaluate
    }));
    assert!(defects.contains(&GraphDefect::LeavesConclude));
}

#[test]
fn edges_are_tried_in_order() {
    let g = Graph::complex();
    let both = Facts {
        confident: true,
        rounds_left: true,
        ..Facts::default()
    };
    assert_eq!(
        g.follow(Node::Evaluate, &both).map(|e| e.to),
        Some(Node::Synthesize)
    );
    let low = Facts {
        rounds_left: true,
        ..Facts::default()
    };
    assert_eq!(
        g.follow(Node::Evaluate, &low).map(|e| e.to),
        Some(Node::Plan)
    );
    assert_eq!(
        g.follow(Node::Evaluate, &Facts::default()).map(|e| e.to),
        Some(Node::Synthesize)
    );
}

#[test]
fn every_phase_is_a_node_and_back() {
    for n in Node::ALL {
        assert_eq!(Node::of_phase(n.phase()), n);
    }
    assert_eq!(Graph::of(Mode::Simple), Graph::simple());
}
