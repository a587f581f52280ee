// Package tools is the root of pir's development module: the programs and
// tests that exercise the whole project (benchmarks, simulators, browser
// tests) with dependencies the library itself must not carry. It is never
// required by another module; it moves with the core in every commit,
// through the replace directive in its go.mod.
package tools
