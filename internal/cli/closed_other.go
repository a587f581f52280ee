//go:build !linux

package cli

import (
	"context"
	"io"
)

// ReaderGone is nil where pir cannot tell that a pipe's reader has gone:
// pir then stops at its next write.
func ReaderGone(context.Context, io.Writer) <-chan struct{} { return nil }
