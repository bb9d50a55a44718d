//! `docs/WORKFLOWS.md` shows the graphs the code runs.

use rootcause_workflow::Graph;

#[test]
fn the_docs_graph_listing_matches_the_code() {
    let doc = include_str!("../../../../docs/WORKFLOWS.md");
    for g in [Graph::simple(), Graph::complex()] {
        let listing = g.render();
        assert!(
            doc.contains(&listing),
            "docs/WORKFLOWS.md is out of date; paste this listing:\n{listing}"
        );
    }
}
