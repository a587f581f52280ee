// Package internal holds no code: its test checks the boundary of the
// packages under it. They are the core module's own, with no compatibility
// promise, so no other module may import them: not the plugins (each its
// own module, published apart), nor any module added later. Only tools/, a
// development module that is never published, may.
package internal
