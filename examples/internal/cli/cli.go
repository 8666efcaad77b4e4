// Package cli parses the command-line flags every program in examples/
// shares (DESIGN.md, "Examples contract") into the typed values a
// stream.Config takes. A program of your own would declare the few it
// needs with package flag the same way.
package cli

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/runnel-dev/runnel/clientconfig"
	"github.com/runnel-dev/runnel/stream"
)

// Flags are the parsed common flags.
type Flags struct {
	// Brokers is -brokers, or else bootstrap.servers of -client-config;
	// empty means a demo on an embedded broker.
	Brokers []string
	// AppID is -app-id.
	AppID string
	// StateDir is -state-dir; empty means the library's default (and a
	// temporary directory in the demo).
	StateDir string
	// Input and Output are -input and -output, the topic names.
	Input, Output string
	// Guarantee is -guarantee: at_least_once (default) or exactly_once.
	Guarantee stream.Guarantee
	// Partitions is -partitions: the partition count of the topics the
	// demo creates (default 3).
	Partitions int32
	// CommitInterval is -commit-interval; zero means the library's default.
	CommitInterval time.Duration
	// Client is what the -client-config file says about reaching a secured
	// cluster; the zero Settings without the flag.
	Client clientconfig.Settings
}

// Parse declares the common flags with the program's defaults for AppID,
// Input and Output, parses the command line, and returns the values. Like
// flag.Parse it prints the problem and the usage and exits with status 2 on
// a bad flag, including a -client-config file that cannot be used.
func Parse(appID, input, output string) Flags {
	f := Flags{AppID: appID, Input: input, Output: output, Partitions: 3}
	var clientConfig string
	flag.Func("brokers", "bootstrap servers host:port[,...]; empty runs a demo on an embedded broker", func(s string) error {
		f.Brokers = nil
		for _, b := range strings.Split(s, ",") {
			if b = strings.TrimSpace(b); b != "" {
				f.Brokers = append(f.Brokers, b)
			}
		}
		return nil
	})
	flag.StringVar(&f.AppID, "app-id", f.AppID, "application id (consumer group, internal topic prefix)")
	flag.StringVar(&f.StateDir, "state-dir", "", "state directory (default: the library's, a temporary directory in the demo)")
	flag.StringVar(&f.Input, "input", f.Input, "input topic")
	flag.StringVar(&f.Output, "output", f.Output, "output topic")
	flag.Func("guarantee", "processing guarantee: at_least_once (default) or exactly_once", func(s string) error {
		switch s {
		case "at_least_once":
			f.Guarantee = stream.AtLeastOnce
		case "exactly_once":
			f.Guarantee = stream.ExactlyOnce
		default:
			return fmt.Errorf("want at_least_once or exactly_once")
		}
		return nil
	})
	flag.Func("partitions", "partitions of the topics the demo creates (default 3)", func(s string) error {
		n, err := strconv.ParseInt(s, 10, 32)
		f.Partitions = int32(n)
		return err
	})
	flag.DurationVar(&f.CommitInterval, "commit-interval", 0, "commit interval, a Go duration (default: the library's, 30s at-least-once, 100ms exactly-once)")
	flag.StringVar(&clientConfig, "client-config", "", "file of Java client properties (security.protocol, sasl.*, ssl.*, bootstrap.servers) for a secured cluster")
	flag.Parse()

	if clientConfig != "" {
		s, err := clientconfig.Load(clientConfig)
		if err != nil {
			usageError("-client-config: %v", err)
		}
		f.Client = s
		if len(f.Brokers) == 0 {
			f.Brokers = s.BootstrapServers
		}
		if len(f.Brokers) == 0 {
			usageError("-client-config %s: no cluster to connect to: give -brokers or bootstrap.servers in the file", clientConfig)
		}
	}
	return f
}

// usageError reports a bad flag as flag.Parse does.
func usageError(format string, args ...any) {
	fmt.Fprintf(flag.CommandLine.Output(), format+"\n", args...)
	flag.Usage()
	os.Exit(2)
}
