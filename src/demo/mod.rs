//! `maasctl demo`: the console on a throw-away store seeded with a
//! marketplace, clusters, workspaces, keys, rules and models served by a
//! built-in mock upstream, with gentle traffic, so every pane moves.
