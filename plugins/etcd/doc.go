// Package etcd mirrors a pir group into etcd, so that processes outside the
// group's LAN can follow it.
//
// A Mirror runs beside each member's discovery.Group. It writes the member
// under <prefix>/<group>/<id> (group and id path-escaped) with a lease of
// its own, keeps the lease alive while the member runs, and deletes the key
// at once when the member leaves (Mirror.Leave). A member that crashes, or
// loses etcd for longer than the lease's TTL, disappears when its lease
// ends. Each Mirror also deletes, at once, the key of every peer its Group
// sees leave — by goodbye, failed health probes or silence — so that a death
// pir detects shows in etcd without waiting for the TTL. A member whose key a
// peer deleted writes it again as soon as its own health probe passes.
//
// A Watcher follows one group through etcd with the API of a
// discovery.Group: Members, Member, AddListener delivering Joined, Updated
// and Left events (with their Reason), Stats and Close. It reads the group,
// then watches it from the revision read, and reads it again whenever the
// watch loses its place (a compaction while disconnected).
//
// The value under a member's key is JSON: id, group, health_uri, comms_uri,
// meta, addr, health, and left for the short-lived departure note written
// just before a key is deleted, which tells watchers why it went. Values
// come from the network: a Watcher skips and counts any that do not decode.
// docs/plugins/etcd.md in the pir repository describes the format and the
// design.
//
// # Lifecycle and ownership
//
// StartMirror and Watch take a context that bounds only their start. Each
// starts one goroutine; Close stops it and waits for it (and, for a
// Watcher, for its listeners). The caller owns the *clientv3.Client and the
// discovery.Group, and closes them after the Mirror or Watcher. Every method
// is safe for concurrent use.
//
// The client needs go.etcd.io/etcd/client/v3 and an etcd server with the v3
// API, 3.4 or later.
package etcd
