// Package devbroker runs a Kafka cluster inside your Go process, for demos
// and integration tests: franz-go's kfake, a Kafka implementation in Go
// that speaks the real protocol over TCP on 127.0.0.1. Nothing to install,
// nothing to clean up, one cluster per test if you like.
//
// It is not a production broker: no replication across machines, no
// durability guarantees beyond [Config.DataDir], a fraction of Kafka's
// throughput. Use it where you would otherwise start a Kafka container.
//
// # Use
//
//	broker, err := devbroker.Start(devbroker.Config{
//		Topics: map[string]int32{"text-lines": 3, "word-counts": 3},
//	})
//	if err != nil {
//		return err
//	}
//	defer broker.Close()
//	cfg := stream.Config{AppID: "wordcount", Brokers: broker.Brokers()}
//
// Any Kafka client reaches it at [Cluster.Brokers]; [Cluster.ClientOpts]
// are the franz-go options to do so, including the SASL credentials when
// [Config.SASL] is set.
//
// # In tests
//
// Start one cluster per test (it takes milliseconds) and close it after
// everything that uses it:
//
//	broker, err := devbroker.Start(devbroker.Config{Topics: map[string]int32{"in": 2, "out": 2}})
//	if err != nil {
//		t.Fatal(err)
//	}
//	t.Cleanup(broker.Close)
//
// Cleanups run last-registered first, so an application whose Run is
// cancelled and awaited in a cleanup registered later stops before the
// broker does; a client still open when the broker closes retries until it
// is closed.
//
// # Differences from Kafka
//
// [Cluster.CreateTopic] uses replication factor 1. The group minimum
// session timeout defaults to 100 ms instead of Kafka's 6 s, so that group
// members joining and leaving settle quickly in tests. A failed SASL login
// closes the connection instead of answering SASL_AUTHENTICATION_FAILED.
// kfake implements most of the protocol (groups, transactions, ACLs, SASL,
// TLS); [Cluster.Kfake] gives access to its fault injection and inspection.
package devbroker

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/clientconfig"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultGroupMinSessionTimeout is the group minimum session timeout when
// Config.GroupMinSessionTimeout is zero.
const DefaultGroupMinSessionTimeout = 100 * time.Millisecond

// Config configures Start. The zero Config is one in-memory broker with no
// topics and no authentication.
type Config struct {
	// NumBrokers is the number of brokers. Default 1.
	NumBrokers int
	// Topics are created at start: topic name → partitions.
	Topics map[string]int32
	// DataDir, when set, keeps the cluster's data (topics, records, group
	// offsets) in that directory, and a cluster started again on it finds
	// them. Default: in memory, gone at Close.
	DataDir string
	// GroupMinSessionTimeout is the broker's group.min.session.timeout.ms:
	// the shortest session timeout a group member may ask for. Default
	// DefaultGroupMinSessionTimeout (Kafka's is 6s).
	GroupMinSessionTimeout time.Duration
	// SASL, when not empty, makes the cluster require SASL authentication
	// (over plaintext) and creates these users, as superusers. Clients
	// from ClientOpts, and the cluster's own admin client, log in as the
	// first one.
	SASL []User
	// Kfake are further kfake options (kfake.TLS, kfake.EnableACLs, ...),
	// applied after those the fields above make, so they override them.
	// ClientOpts knows nothing of them: with kfake.TLS, for one, clients
	// need kgo.DialTLSConfig too (and Start's admin client cannot connect,
	// so leave Topics empty and create topics with a client of your own).
	Kfake []kfake.Opt
}

// User is a SASL user of the cluster.
type User struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string
	// Name and Password are the credentials.
	Name, Password string
}

// Cluster is a running embedded cluster.
//
// A Cluster is safe for concurrent use. The caller must call Close.
type Cluster struct {
	kf         *kfake.Cluster
	addrs      []string
	clientOpts []kgo.Opt
	adm        *kadm.Client

	closeOnce sync.Once
}

// Start starts a cluster on free 127.0.0.1 ports, with its topics created.
// It returns once the cluster accepts connections.
func Start(cfg Config) (*Cluster, error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(max(cfg.NumBrokers, 1)),
		kfake.GroupMinSessionTimeout(cmp.Or(cfg.GroupMinSessionTimeout, DefaultGroupMinSessionTimeout)),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	for topic, partitions := range cfg.Topics {
		opts = append(opts, kfake.SeedTopics(partitions, topic))
	}
	var clientOpts []kgo.Opt
	if len(cfg.SASL) > 0 {
		opts = append(opts, kfake.EnableSASL())
		for i, u := range cfg.SASL {
			m, err := clientconfig.SASLMechanism(u.Mechanism, u.Name, u.Password)
			if err != nil {
				return nil, fmt.Errorf("devbroker: SASL user %q: %w", u.Name, err)
			}
			if i == 0 {
				clientOpts = append(clientOpts, kgo.SASL(m))
			}
			opts = append(opts, kfake.Superuser(strings.ToUpper(u.Mechanism), u.Name, u.Password))
		}
	}
	kf, err := kfake.NewCluster(append(opts, cfg.Kfake...)...)
	if err != nil {
		return nil, fmt.Errorf("devbroker: starting kfake: %w", err)
	}
	c := &Cluster{kf: kf, addrs: kf.ListenAddrs()}
	c.clientOpts = append([]kgo.Opt{kgo.SeedBrokers(c.addrs...)}, clientOpts...)
	// A short metadata age lets the admin client see a topic it has just
	// created at once (franz-go's default is 5s).
	cl, err := kgo.NewClient(c.ClientOpts(kgo.MetadataMinAge(50 * time.Millisecond))...)
	if err != nil {
		kf.Close()
		return nil, fmt.Errorf("devbroker: admin client: %w", err)
	}
	c.adm = kadm.NewClient(cl)
	return c, nil
}

// Brokers returns the cluster's bootstrap addresses ("127.0.0.1:port"), for
// stream.Config.Brokers or kgo.SeedBrokers. The caller may modify the
// returned slice.
func (c *Cluster) Brokers() []string { return slices.Clone(c.addrs) }

// ClientOpts returns the franz-go options that reach the cluster (its seed
// brokers and, with Config.SASL, the first user's credentials) followed by
// extra. The caller owns the returned slice.
func (c *Cluster) ClientOpts(extra ...kgo.Opt) []kgo.Opt {
	return append(slices.Clone(c.clientOpts), extra...)
}

// Admin returns the cluster's admin client, to create topics with configs,
// list offsets, describe groups... It belongs to the cluster: do not Close
// it.
func (c *Cluster) Admin() *kadm.Client { return c.adm }

// Kfake returns the underlying kfake cluster, for fault injection
// (ControlKey, Fault, ...) and inspection (GroupInfo, PartitionInfo, ...).
func (c *Cluster) Kfake() *kfake.Cluster { return c.kf }

// CreateTopic creates a topic with the given partitions (replication factor
// 1) and optional topic configs (nil for none). An existing topic is an
// error matching kerr.TopicAlreadyExists with errors.Is.
func (c *Cluster) CreateTopic(ctx context.Context, topic string, partitions int32, configs map[string]*string) error {
	if _, err := c.adm.CreateTopic(ctx, partitions, 1, configs, topic); err != nil {
		return fmt.Errorf("devbroker: creating topic %q: %w", topic, err)
	}
	return nil
}

// Close closes the admin client, then stops the brokers. It is idempotent.
// Clients the caller created against the cluster should be closed first;
// otherwise they retry until they are closed.
func (c *Cluster) Close() {
	c.closeOnce.Do(func() {
		c.adm.Close()
		c.kf.Close()
	})
}
