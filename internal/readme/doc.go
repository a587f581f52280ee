// Package readme holds no code: its tests keep README.md true. They take
// the Go program in the README's Usage section, build it as it is written,
// and run two copies of it inside a private network namespace (see
// internal/netlab), which must find each other. A README edit that breaks
// the program, or a library change that breaks the README, fails the suite.
package readme
