package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
)

// ErrAuthentication is wrapped by the error Run fails with when the
// cluster rejects the client's credentials (SASL).
var ErrAuthentication = errors.New("stream: authentication failed")

// ErrAuthorization is wrapped by the error Run fails with when the
// cluster denies the application access to a topic, its group, its
// transactional id or the cluster (ACLs).
var ErrAuthorization = errors.New("stream: not authorized")

// maxAuthFailures is how many SASL authentications in a row may fail
// while listing the topics at start before Run gives up: credentials
// being rotated may be rejected for a moment, wrong ones forever.
const maxAuthFailures = 3

// authWatch is a franz-go hook of the admin client that counts failed
// SASL authentications: a broker may close the connection instead of
// answering SASL_AUTHENTICATION_FAILED, which the request then reports
// as a mere EOF, indistinguishable from an unreachable cluster. It keeps
// the client's SASL mechanisms, to name them in the error.
type authWatch struct {
	failures   atomic.Int32
	mechanisms []sasl.Mechanism // set by OnNewClient, before any read
}

var (
	_ kgo.HookBrokerRead = (*authWatch)(nil)
	_ kgo.HookNewClient  = (*authWatch)(nil)
)

// OnNewClient keeps the client's SASL mechanisms.
func (w *authWatch) OnNewClient(cl *kgo.Client) {
	w.mechanisms, _ = cl.OptValue(kgo.SASL).([]sasl.Mechanism)
}

// OnBrokerRead counts failed SASLAuthenticate responses and resets the
// count on any successful one.
func (w *authWatch) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key != int16(kmsg.SASLAuthenticate) {
		return
	}
	if err != nil {
		w.failures.Add(1)
	} else {
		w.failures.Store(0)
	}
}

// accessError returns the error Run fails with at start when listing
// names failed with err because of the application's credentials or
// permissions, or nil when err may be transient (prepareTopics retries).
func (r *Runtime) accessError(ctx context.Context, names []string, err error) error {
	if errors.Is(err, kerr.SaslAuthenticationFailed) || r.auth.failures.Load() >= maxAuthFailures {
		return fmt.Errorf("%w (%s): check the credentials in Config.ClientOpts: %w", ErrAuthentication, r.saslIdentity(ctx), err)
	}
	if !isAuthorizationError(err) {
		return nil
	}
	// The listing failed as a whole: find the topics denied.
	var denied []string
	for _, name := range names {
		tds, lerr := r.adm.ListTopics(ctx, name)
		if lerr == nil {
			lerr = tds[name].Err
		}
		if isAuthorizationError(lerr) {
			denied = append(denied, fmt.Sprintf("%q", name))
		}
	}
	if len(denied) == 0 {
		return fmt.Errorf("%w: grant the application's principal access to the cluster: %w", ErrAuthorization, err)
	}
	return fmt.Errorf("%w to describe topics %s: grant the application's principal access to them: %w", ErrAuthorization, strings.Join(denied, ", "), err)
}

// failOnAccessError fails the runtime when a fetch or group error of
// the poll loop says the application lacks permissions, which retrying
// does not fix.
func (r *Runtime) failOnAccessError(topic string, partition int32, err error) {
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		r.fail(fmt.Errorf("%w: %w", ErrAuthentication, err))
	case isAuthorizationError(err) && topic != "":
		r.fail(fmt.Errorf("%w to read topic %q (partition %d): %w", ErrAuthorization, topic, partition, err))
	case isAuthorizationError(err):
		r.fail(fmt.Errorf("%w: %w", ErrAuthorization, err))
	}
}

// isAuthorizationError reports whether err is an ACL denial.
func isAuthorizationError(err error) bool {
	for _, e := range []error{kerr.TopicAuthorizationFailed, kerr.GroupAuthorizationFailed,
		kerr.ClusterAuthorizationFailed, kerr.TransactionalIDAuthorizationFailed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// saslIdentity describes the client's SASL mechanism and user, for
// authentication errors. The user is read from the mechanism's first
// message (PLAIN: RFC 4616; SCRAM: RFC 5802), never the password.
func (r *Runtime) saslIdentity(ctx context.Context) string {
	ms := r.auth.mechanisms
	if len(ms) == 0 {
		return "no SASL mechanism configured"
	}
	m := ms[0]
	_, first, err := m.Authenticate(ctx, "")
	if err != nil {
		return "mechanism " + m.Name()
	}
	user := ""
	switch {
	case strings.HasPrefix(m.Name(), "SCRAM-"):
		for _, f := range bytes.Split(first, []byte(",")) {
			if u, ok := bytes.CutPrefix(f, []byte("n=")); ok {
				user = string(u)
			}
		}
	case m.Name() == "PLAIN":
		if parts := bytes.Split(first, []byte{0}); len(parts) == 3 {
			user = string(parts[1])
		}
	}
	if user == "" {
		return "mechanism " + m.Name()
	}
	return fmt.Sprintf("mechanism %s, user %q", m.Name(), user)
}
