//go:build !linux

package mcast

import "errors"

// Watch is Linux's only (rtnetlink): elsewhere RescanLoop polls.
func Watch() (*Watcher, error) { return nil, errors.ErrUnsupported }
