package etcd_test

import (
	"context"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	pireetcd "github.com/pirlan/pir/plugins/etcd"
	"github.com/pirlan/pir/plugins/etcd/internal/etcdtest"
	"github.com/pirlan/pir/transport/mem"
)

// A member mirrors itself into etcd, and a Watcher, which could run
// anywhere etcd is reachable, follows the group from there: it sees the
// member join, then leave with a goodbye. The member's LAN is the
// in-memory one here; the etcd server is a real one on loopback, which
// this example starts (Debian's etcd-server package has it).
func Example() {
	dir, err := os.MkdirTemp("", "pir-etcd-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	srv, err := etcdtest.StartProcess(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Kill()

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, Logger: zap.NewNop()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // against a hang only
	defer cancel()

	// The watcher's view: Joined and Left events, as a member's listener
	// would hear them.
	w, err := pireetcd.Watch(ctx, cli, pireetcd.DefaultWatchConfig("web"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()
	events := make(chan discovery.Event, 64)
	w.AddListener(func(e discovery.Event) bool {
		events <- e
		return true
	})
	next := func(t discovery.EventType) {
		for {
			select {
			case e := <-events:
				if e.Type == t {
					if t == discovery.Left {
						fmt.Println("watcher:", e) // with the reason
					} else {
						fmt.Println("watcher:", e.Type, e.Member.ID) // the peer's URIs vary
					}
					return
				}
			case <-ctx.Done():
				fmt.Println("watcher: no", t, "event:", ctx.Err())
				return
			}
		}
	}

	// The member: a health server, a Group on the LAN, and its Mirror.
	hc := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	if err := hc.Start("127.0.0.1:0"); err != nil {
		fmt.Println(err)
		return
	}
	defer hc.Close()
	lan, err := mem.NewLAN(mem.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	g, err := discovery.Join(ctx, discovery.Config{
		Name:      "web",
		Self:      discovery.Peer{ID: "m1", HealthURI: hc.URI()},
		Transport: lan.Join(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close()
	m, err := pireetcd.StartMirror(ctx, g, cli, pireetcd.DefaultMirrorConfig("web"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	fmt.Println("member: mirrored at", m.Key())
	next(discovery.Joined)

	// Leave deletes the key and leaves the group.
	if err := m.Leave(ctx); err != nil {
		fmt.Println(err)
		return
	}
	next(discovery.Left)
	// Output:
	// member: mirrored at /pir/web/m1
	// watcher: joined m1
	// watcher: left m1 (goodbye)
}
