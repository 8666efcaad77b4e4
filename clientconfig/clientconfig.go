// Package clientconfig reads the connection settings of a Kafka client from
// a Java client properties file — the client.properties that Kafka's own
// tools take with --command-config — and turns them into franz-go options,
// so that one file reaches a secured cluster from Java tools and from a
// Runnel application alike.
//
// # Use
//
//	s, err := clientconfig.Load("client.properties")
//	if err != nil {
//		return err // names the file, the line and the key
//	}
//	cfg := stream.Config{AppID: "wordcount", Brokers: s.BootstrapServers, ClientOpts: s.Opts()}
//
// # The file
//
// One "key=value" per line ("key: value" and "key value" work too, as in
// Java); blank lines and lines starting with '#' or '!' are ignored; a line
// ending in a backslash continues on the next one. Other backslash escapes
// are not interpreted: a value is taken as written.
//
// # Keys
//
//   - bootstrap.servers: "host:port,host:port" ([Settings.BootstrapServers]).
//   - client.id: [kgo.ClientID].
//   - security.protocol: PLAINTEXT (the default), SSL, SASL_PLAINTEXT or
//     SASL_SSL.
//   - sasl.mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. Java's default,
//     GSSAPI, is not supported, so SASL needs it set.
//   - sasl.username, sasl.password: the SASL credentials (librdkafka's names),
//     or Java's sasl.jaas.config with a PlainLoginModule or ScramLoginModule
//     and its username="..." password="..." options.
//   - ssl.ca.location: PEM file of the certificate authorities that sign the
//     brokers' certificates. Default: the system's roots.
//   - ssl.certificate.location, ssl.key.location: PEM files of the client's
//     certificate and unencrypted key, for clusters that authenticate
//     clients by TLS certificate.
//   - ssl.endpoint.identification.algorithm: "https" (the default) checks
//     that a broker's certificate names the host dialled; empty checks only
//     that a trusted authority signed it.
//
// Any other key is an error naming it (with a hint for the Java keystore
// settings, which have PEM equivalents above), as is an ssl.* key without
// SSL or a sasl.* key without SASL in security.protocol: a setting that
// would be silently ignored is a misconfiguration found at start rather than
// at the first connection.
package clientconfig

import (
	"bufio"
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// ErrInvalid is wrapped by every error about the content of a properties
// file: an unknown or unsupported key, or a bad value. The message names the
// key (and, from Load, the file and line).
var ErrInvalid = errors.New("clientconfig: invalid client properties")

// Settings are what a properties file says about reaching the cluster.
// The zero Settings is a plaintext connection with franz-go's defaults.
type Settings struct {
	// BootstrapServers are the bootstrap.servers, nil if the file has none.
	BootstrapServers []string
	// ClientID is the client.id, empty if the file has none.
	ClientID string
	// TLS is the TLS configuration of SSL and SASL_SSL, nil for PLAINTEXT
	// and SASL_PLAINTEXT.
	TLS *tls.Config
	// SASL is the SASL mechanism with its credentials, nil without SASL.
	SASL sasl.Mechanism
}

// Opts returns the franz-go options for the settings, to append to a
// client's own or to pass as stream.Config.ClientOpts. BootstrapServers is
// not among them: it belongs to stream.Config.Brokers (or kgo.SeedBrokers).
func (s Settings) Opts() []kgo.Opt {
	var opts []kgo.Opt
	if s.ClientID != "" {
		opts = append(opts, kgo.ClientID(s.ClientID))
	}
	if s.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(s.TLS))
	}
	if s.SASL != nil {
		opts = append(opts, kgo.SASL(s.SASL))
	}
	return opts
}

// Load reads the properties file at path and returns its settings. Errors
// about its content wrap ErrInvalid and name the file, the line and the key;
// the certificate files it names are read here too, so every problem shows
// at start.
func Load(path string) (Settings, error) {
	f, err := os.Open(path)
	if err != nil {
		return Settings{}, fmt.Errorf("clientconfig: %w", err)
	}
	defer f.Close()
	return parse(f, path)
}

// Parse is Load for properties read from r; errors name the line as
// "line N".
func Parse(r io.Reader) (Settings, error) { return parse(r, "") }

// property is one key=value of a file, with where it was found for errors.
type property struct {
	value string
	where string // "file:line" or "line N"
}

func parse(r io.Reader, file string) (Settings, error) {
	props := map[string]property{}
	var logical strings.Builder // the property being read, over continued lines
	start := 0                  // its first line
	add := func() {
		key, value := splitProperty(logical.String())
		logical.Reset()
		where := fmt.Sprintf("line %d", start)
		if file != "" {
			where = fmt.Sprintf("%s:%d", file, start)
		}
		props[key] = property{value: value, where: where}
	}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimLeft(sc.Text(), " \t\f")
		if start == 0 {
			if text == "" || text[0] == '#' || text[0] == '!' {
				continue
			}
			start = line
		}
		if continues(text) {
			logical.WriteString(text[:len(text)-1])
			continue
		}
		logical.WriteString(text)
		add()
		start = 0
	}
	if err := sc.Err(); err != nil {
		return Settings{}, fmt.Errorf("clientconfig: reading %s: %w", cmp.Or(file, "properties"), err)
	}
	if start != 0 { // the last line ended in a continuation
		add()
	}
	return fromProperties(props)
}

// continues reports whether a line continues on the next one: it ends in
// an odd number of backslashes (an even number are escaped backslashes).
func continues(line string) bool {
	n := len(line) - len(strings.TrimRight(line, `\`))
	return n%2 == 1
}

// splitProperty splits a logical line at the first '=', ':' or whitespace,
// as java.util.Properties does.
func splitProperty(s string) (key, value string) {
	i := strings.IndexAny(s, "=: \t\f")
	if i < 0 {
		return s, ""
	}
	key, rest := s[:i], strings.TrimLeft(s[i:], " \t\f")
	if s[i] == ' ' || s[i] == '\t' || s[i] == '\f' {
		if rest != "" && (rest[0] == '=' || rest[0] == ':') {
			rest = rest[1:]
		}
	} else {
		rest = rest[1:]
	}
	return key, strings.TrimSpace(rest)
}

// hints says what to use instead of a Java key this package does not read.
var hints = map[string]string{
	"ssl.truststore.location": "convert the truststore to PEM and use ssl.ca.location",
	"ssl.truststore.password": "convert the truststore to PEM and use ssl.ca.location",
	"ssl.truststore.type":     "convert the truststore to PEM and use ssl.ca.location",
	"ssl.keystore.location":   "convert the keystore to PEM and use ssl.certificate.location and ssl.key.location",
	"ssl.keystore.password":   "convert the keystore to PEM and use ssl.certificate.location and ssl.key.location",
	"ssl.keystore.type":       "convert the keystore to PEM and use ssl.certificate.location and ssl.key.location",
	"ssl.key.password":        "decrypt the key (openssl pkey -in key.pem -out plain.pem) and use ssl.key.location",
}

// supported lists the keys fromProperties reads, in the order it reports
// them.
var supported = []string{
	"bootstrap.servers", "client.id", "security.protocol",
	"sasl.mechanism", "sasl.username", "sasl.password", "sasl.jaas.config",
	"ssl.ca.location", "ssl.certificate.location", "ssl.key.location",
	"ssl.endpoint.identification.algorithm",
}

func fromProperties(props map[string]property) (Settings, error) {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if slices.Contains(supported, k) {
			continue
		}
		p := props[k]
		if h, ok := hints[k]; ok {
			return Settings{}, fmt.Errorf("%w: %s: key %q is not supported: %s", ErrInvalid, p.where, k, h)
		}
		return Settings{}, fmt.Errorf("%w: %s: unknown key %q (supported: %s)", ErrInvalid, p.where, k, strings.Join(supported, ", "))
	}
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s: %s", ErrInvalid, props[key].where, key, fmt.Sprintf(format, args...))
	}
	get := func(key string) (string, bool) {
		p, ok := props[key]
		return p.value, ok
	}

	var s Settings
	if v, ok := get("bootstrap.servers"); ok {
		for _, b := range strings.Split(v, ",") {
			if b = strings.TrimSpace(b); b != "" {
				s.BootstrapServers = append(s.BootstrapServers, b)
			}
		}
		if len(s.BootstrapServers) == 0 {
			return Settings{}, bad("bootstrap.servers", "empty")
		}
	}
	s.ClientID, _ = get("client.id")

	protocol, _ := get("security.protocol")
	var useTLS, useSASL bool
	switch strings.ToUpper(protocol) {
	case "", "PLAINTEXT":
	case "SSL":
		useTLS = true
	case "SASL_PLAINTEXT":
		useSASL = true
	case "SASL_SSL":
		useTLS, useSASL = true, true
	default:
		return Settings{}, bad("security.protocol", "%q is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", protocol)
	}
	for _, k := range keys {
		if strings.HasPrefix(k, "ssl.") && !useTLS {
			return Settings{}, bad(k, "set, but security.protocol %s does not use SSL", cmp.Or(protocol, "PLAINTEXT (the default)"))
		}
		if strings.HasPrefix(k, "sasl.") && !useSASL {
			return Settings{}, bad(k, "set, but security.protocol %s does not use SASL", cmp.Or(protocol, "PLAINTEXT (the default)"))
		}
	}
	if useTLS {
		cfg, err := tlsConfig(get, bad)
		if err != nil {
			return Settings{}, err
		}
		s.TLS = cfg
	}
	if useSASL {
		m, err := saslMechanism(get, bad)
		if err != nil {
			return Settings{}, err
		}
		s.SASL = m
	}
	return s, nil
}

// tlsConfig builds the TLS configuration of the ssl.* keys.
func tlsConfig(get func(string) (string, bool), bad func(key, format string, args ...any) error) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if path, ok := get("ssl.ca.location"); ok {
		pem, err := os.ReadFile(path)
		if err != nil {
			return nil, bad("ssl.ca.location", "%v", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, bad("ssl.ca.location", "no PEM certificate in %s", path)
		}
	}
	certPath, hasCert := get("ssl.certificate.location")
	keyPath, hasKey := get("ssl.key.location")
	switch {
	case hasCert && hasKey:
		cert, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			return nil, bad("ssl.certificate.location", "with ssl.key.location: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case hasCert:
		return nil, bad("ssl.certificate.location", "set without ssl.key.location")
	case hasKey:
		return nil, bad("ssl.key.location", "set without ssl.certificate.location")
	}
	switch alg, _ := get("ssl.endpoint.identification.algorithm"); strings.ToLower(alg) {
	case "https":
	case "":
		if _, set := get("ssl.endpoint.identification.algorithm"); set {
			skipHostnameCheck(cfg)
		}
	default:
		return nil, bad("ssl.endpoint.identification.algorithm", "%q is not https or empty", alg)
	}
	return cfg, nil
}

// skipHostnameCheck makes cfg verify the brokers' certificate chains
// against its roots but not the host name, as Java does with an empty
// ssl.endpoint.identification.algorithm. crypto/tls can only skip both, so
// the chain is verified again here.
func skipHostnameCheck(cfg *tls.Config) {
	cfg.InsecureSkipVerify = true
	roots := cfg.RootCAs
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("clientconfig: broker sent no certificate")
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(opts)
		return err
	}
}

// jaasOption matches one key="value" option of a JAAS login module line.
var jaasOption = regexp.MustCompile(`(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"`)

// loginModules maps the supported SASL mechanisms to the JAAS login module
// Java configures them with.
var loginModules = map[string]string{
	"PLAIN":         "org.apache.kafka.common.security.plain.PlainLoginModule",
	"SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
	"SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}

// saslMechanism builds the SASL mechanism of the sasl.* keys.
func saslMechanism(get func(string) (string, bool), bad func(key, format string, args ...any) error) (sasl.Mechanism, error) {
	mech, ok := get("sasl.mechanism")
	if !ok {
		return nil, bad("security.protocol", "SASL needs sasl.mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; Java's default GSSAPI is not supported)")
	}
	module, ok := loginModules[strings.ToUpper(mech)]
	if !ok {
		return nil, bad("sasl.mechanism", "%q is not supported (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", mech)
	}
	user, hasUser := get("sasl.username")
	pass, hasPass := get("sasl.password")
	if jaas, ok := get("sasl.jaas.config"); ok {
		if hasUser || hasPass {
			return nil, bad("sasl.jaas.config", "set together with sasl.username or sasl.password; use one or the other")
		}
		if got, _, _ := strings.Cut(strings.TrimSpace(jaas), " "); got != module {
			return nil, bad("sasl.jaas.config", "login module %q does not match sasl.mechanism %s (want %s)", got, mech, module)
		}
		for _, m := range jaasOption.FindAllStringSubmatch(jaas, -1) {
			switch m[1] {
			case "username":
				user, hasUser = m[2], true
			case "password":
				pass, hasPass = m[2], true
			}
		}
		if !hasUser || !hasPass {
			return nil, bad("sasl.jaas.config", `needs username="..." and password="..."`)
		}
	}
	if !hasUser || !hasPass {
		return nil, bad("sasl.mechanism", "needs sasl.username and sasl.password (or sasl.jaas.config)")
	}
	return SASLMechanism(mech, user, pass)
}

// SASLMechanism returns the franz-go SASL mechanism named as Kafka names it
// (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, in any case) with the given
// credentials, for kgo.SASL. Another name is an error wrapping ErrInvalid.
func SASLMechanism(name, user, pass string) (sasl.Mechanism, error) {
	switch strings.ToUpper(name) {
	case "PLAIN":
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("%w: SASL mechanism %q is not supported (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", ErrInvalid, name)
}
