// Package server runs consentledger: it opens the ledger in a data
// directory, activates the policy, and serves the Connect API (Connect,
// gRPC and gRPC-Web, JSON and binary, on one port over h2c or TLS), gRPC
// health and reflection, and Prometheus metrics on /metrics. With
// principals, every request but health is authenticated from its headers
// before its body is read, and reflection and metrics need a token unless
// served on Config.MetricsAddr. It stops gracefully: in-flight appends
// complete before the ledger closes.
package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/consentledger/consentledger/ledger/witness"
	"github.com/consentledger/consentledger/policies"
	"github.com/consentledger/consentledger/rpc"
)

// DefaultAddr is the address the server listens on when none is configured.
const DefaultAddr = "127.0.0.1:7420"

// Config configures Run. The zero value of each field means its documented
// default. Addr, Origin, TLS and Principals come from the YAML config file
// (README.md: The API); the rest from flags.
type Config struct {
	// Addr is host:port to listen on; empty means DefaultAddr.
	Addr string `yaml:"addr"`
	// Origin is the log's name in checkpoints, for a new data directory.
	Origin string `yaml:"origin"`
	// TLS, optional: the server's certificate and key, and for mutual TLS
	// the CA that signs client certificates.
	TLS *TLSConfig `yaml:"tls"`
	// Principals are the callers and their roles; without any, the server
	// runs unauthenticated and only on a loopback address.
	Principals []PrincipalConfig `yaml:"principals"`
	// MaxInFlight bounds the unary calls in flight (policy evaluations,
	// appends waiting for their commit, reads), admitted from the headers
	// before the body is read; past it a call waits up to OverloadWait for
	// a slot, first come, first served, then gets resource_exhausted with a
	// retry hint. 0 means 32 per CPU (64 on two cores).
	MaxInFlight int `yaml:"max_in_flight"`
	// OverloadWait is how long a call waits for a slot (a Go duration);
	// 0 means 20ms.
	OverloadWait time.Duration `yaml:"overload_wait"`
	// DiskReserveMiB is the free space (MiB) on the data directory's file
	// system below which writes are refused with resource_exhausted, before
	// the storage engine could crash on a full disk; writes resume above it
	// plus an eighth. 0 means 256 MiB; negative disables the check.
	DiskReserveMiB int64 `yaml:"disk_reserve_mib"`
	// Contact, optional, fills the reply to an inbound HELP (the policy's
	// help_reply template): who sends, where to get support, how to opt
	// out, the privacy notice and the data protection officer (GDPR Art.
	// 13, 21(4)). Fields left empty are left out of the reply.
	Contact ContactConfig `yaml:"contact"`
	// Witnesses are the C2SP tlog-witnesses every new checkpoint is
	// submitted to; none means no witnessing.
	Witnesses []witness.Witness `yaml:"witnesses"`
	// WitnessQuorum is how many cosignatures make a checkpoint witnessed
	// (shown by GetCheckpoint, awaited by `evidence --witnessed`); 0 means
	// all the witnesses.
	WitnessQuorum int `yaml:"witness_quorum"`
	// WitnessInterval is the longest a grown log waits before a checkpoint
	// is submitted, and the retry delay of a failed witness (a Go duration
	// such as 10s); 0 means 10s.
	WitnessInterval time.Duration `yaml:"witness_interval"`
	// MaxBackdate bounds how long before it is recorded an event may be
	// dated: occurred_at of consent events, detected_at of breaches.
	// YAML takes a Go duration such as 8760h; 0 means 365 days.
	MaxBackdate time.Duration `yaml:"max_backdate"`
	// Controller, DPO or ContactPoint, and Authority, optional:
	// the organisation the log is kept for, who is informed of a breach at
	// once, and the supervisory authority a notification draft names. A
	// notice must name the controller; dpo and contact_point fill the help
	// reply instead of contact.dpo_contact.
	Controller   *ControllerConfig `yaml:"controller"`
	DPO          *PersonConfig     `yaml:"dpo"`
	ContactPoint *PersonConfig     `yaml:"contact_point"`
	Authority    *AuthorityConfig  `yaml:"authority"`
	// RequirePublishedNotice: whether an opt-in's notice_version must name a
	// published notice; unset means true once any notice is published.
	RequirePublishedNotice *bool `yaml:"require_published_notice"`
	// Hosts are further names clients and browsers reach this server by
	// (besides the address's host, IP literals and localhost); a request
	// with another Host header is refused (DNS rebinding).
	Hosts []string `yaml:"hosts"`

	// Storage, when it names a Trillian server, puts the log's source of
	// truth on Trillian (see package trillianlog); DataDir is then a cache.
	Storage StorageConfig `yaml:"storage"`
	// Advertise is the URL other nodes and clients reach this node at.
	Advertise string `yaml:"advertise"`

	// LeaseClock, if set, is the clock the leader lease compares with the
	// database's (tests fake a skewed one); nil means time.Now.
	LeaseClock func() time.Time `yaml:"-"`

	// DataDir holds the ledger (required); on Trillian, its local cache.
	DataDir string `yaml:"-"`
	// PoliciesDir, if set, is published at start when it differs from the
	// active policy (compiled and tested first; a failing policy stops the start).
	PoliciesDir string `yaml:"-"`
	// MaxRequestBytes bounds a request message; 0 means 4 MiB.
	MaxRequestBytes int `yaml:"-"`
	// PprofAddr, if set, serves net/http/pprof on this (loopback) address.
	PprofAddr string `yaml:"-"`
	// MetricsAddr, if set, serves /metrics and gRPC reflection without a
	// token on this separate listener (keep it private); on the API port
	// they then, as always with principals, need a token.
	MetricsAddr string `yaml:"-"`
	// InsecureNoTLS allows principals on a non-loopback address without
	// TLS: bearer tokens then cross the network in clear.
	InsecureNoTLS bool `yaml:"-"`
	// BodyReadTimeout bounds reading a request's body; 0 means
	// DefaultBodyReadTimeout.
	BodyReadTimeout time.Duration `yaml:"-"`
	// WatchPerPrincipal and WatchPerConnection bound WatchEntries streams;
	// 0 means DefaultWatchPerPrincipal and DefaultWatchPerConnection.
	WatchPerPrincipal, WatchPerConnection int `yaml:"-"`
	// WatchSendTimeout drops a WatchEntries stream that does not accept an
	// entry within it; 0 means DefaultWatchSendTimeout.
	WatchSendTimeout time.Duration `yaml:"-"`
	// DraftTimeout bounds DryRun, ImpactReport and a publication's test
	// run; 0 means rpc.DefaultDraftTimeout (10 s).
	DraftTimeout time.Duration `yaml:"-"`
	// Now is the clock of the ledger and the policy input; nil means time.Now.
	Now func() time.Time `yaml:"-"`
}

// TLSConfig names PEM files.
type TLSConfig struct {
	Cert     string `yaml:"cert"`
	Key      string `yaml:"key"`
	ClientCA string `yaml:"client_ca"`
}

// ContactConfig is the contact information the help reply gives.
type ContactConfig struct {
	// SenderName is the sender's identity, e.g. "Example Shop GmbH".
	SenderName string `yaml:"sender_name"`
	// SupportContact is where to get help, e.g. "support@example.com".
	SupportContact string `yaml:"support_contact"`
	// OptOut says how to opt out; empty means the policy's default ("reply STOP").
	OptOut string `yaml:"opt_out"`
	// PrivacyNoticeURL links the privacy notice.
	PrivacyNoticeURL string `yaml:"privacy_notice_url"`
	// DPOContact is the data protection officer or contact point.
	DPOContact string `yaml:"dpo_contact"`
}

// PrincipalConfig is one caller: a name (recorded as the actor of its
// entries), a role, and the hex SHA-256 of its bearer token.
type PrincipalConfig struct {
	Name        string `yaml:"name"`
	Role        string `yaml:"role"`
	TokenSHA256 string `yaml:"token_sha256"`
	// RatePerSecond, if above 0, limits the principal's calls (a token
	// bucket); calls over it get resource_exhausted with the time to wait.
	RatePerSecond float64 `yaml:"rate_per_second"`
	// Burst is the bucket's size; 0 means RatePerSecond (at least 1).
	Burst int `yaml:"burst"`
}

// LoadConfig reads a YAML config file. Unknown keys are errors, so a typo
// does not silently turn authentication off.
func LoadConfig(path string) (Config, error) {
	var c Config
	raw, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// check validates c and fills in defaults.
func (c *Config) check() (*rpc.Authenticator, error) {
	if c.DataDir == "" {
		return nil, errors.New("a data directory is required (--data DIR)")
	}
	if err := c.Storage.check(); err != nil {
		return nil, err
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = 4 << 20
	}
	if c.WitnessQuorum < 0 || c.WitnessQuorum > len(c.Witnesses) {
		return nil, fmt.Errorf("config: witness_quorum %d cannot be met by %d witnesses: give a number from 1 to %d", c.WitnessQuorum, len(c.Witnesses), len(c.Witnesses))
	}
	if c.WitnessQuorum == 0 {
		c.WitnessQuorum = len(c.Witnesses)
	}
	if c.WitnessInterval < 0 {
		return nil, fmt.Errorf("config: witness_interval %v is negative", c.WitnessInterval)
	}
	if c.BodyReadTimeout <= 0 {
		c.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if c.WatchPerPrincipal <= 0 {
		c.WatchPerPrincipal = DefaultWatchPerPrincipal
	}
	if c.WatchPerConnection <= 0 {
		c.WatchPerConnection = DefaultWatchPerConnection
	}
	if c.WatchSendTimeout <= 0 {
		c.WatchSendTimeout = DefaultWatchSendTimeout
	}
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", c.Addr, err)
	}
	ip := net.ParseIP(host)
	loopback := host == "localhost" || (ip != nil && ip.IsLoopback())
	if err := c.Contact.check(); err != nil {
		return nil, err
	}
	if err := c.checkOrg(); err != nil {
		return nil, err
	}
	if len(c.Principals) == 0 {
		if !loopback {
			return nil, fmt.Errorf("refusing to listen on %s without authentication: give a --config file with principals and their token hashes, or listen on a loopback address such as 127.0.0.1:7420", c.Addr)
		}
		return nil, nil
	}
	ps := make([]rpc.Principal, len(c.Principals))
	for i, p := range c.Principals {
		ps[i] = rpc.Principal{Name: p.Name, Role: p.Role, TokenSHA256: p.TokenSHA256}
	}
	a, err := rpc.NewAuthenticator(ps)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if c.TLS != nil && (c.TLS.Cert == "" || c.TLS.Key == "") {
		return nil, errors.New("config: tls needs both cert and key")
	}
	if c.TLS == nil && !loopback && !c.InsecureNoTLS {
		return nil, fmt.Errorf("refusing to accept bearer tokens on %s without TLS: they would cross the network in clear; set tls: {cert, key} in the config, listen on a loopback address behind a TLS proxy, or pass --insecure-no-tls if the network is protected otherwise", c.Addr)
	}
	return a, nil
}

// maxContactField bounds each contact field: the reply goes out as an SMS.
const maxContactField = 200

func (c ContactConfig) check() error {
	for name, v := range map[string]string{
		"sender_name": c.SenderName, "support_contact": c.SupportContact, "opt_out": c.OptOut,
		"privacy_notice_url": c.PrivacyNoticeURL, "dpo_contact": c.DPOContact,
	} {
		if len(v) > maxContactField || strings.ContainsFunc(v, unicode.IsControl) {
			return fmt.Errorf("config: contact.%s must be one line of at most %d bytes", name, maxContactField)
		}
	}
	return nil
}

// policyContact is c as the policy's help reply reads it.
func (c ContactConfig) policyContact() policies.Contact {
	return policies.Contact{
		SenderName: c.SenderName, SupportContact: c.SupportContact, OptOut: c.OptOut,
		PrivacyNoticeURL: c.PrivacyNoticeURL, DPOContact: c.DPOContact,
	}
}

// hostNames are the names the server answers to besides IP literals and localhost.
func (c Config) hostNames() []string {
	host, _, _ := net.SplitHostPort(c.Addr)
	return append([]string{host}, c.Hosts...)
}

// StorageConfig selects the log's backend: empty means the embedded Badger
// store in the data directory; Trillian, Tree and SQL together mean a
// Trillian PREORDERED_LOG tree and a MySQL/MariaDB database.
type StorageConfig struct {
	// Trillian is trillian_log_server's gRPC host:port.
	Trillian string `yaml:"trillian"`
	// Tree is the tree id printed by consentledger trillian init.
	Tree int64 `yaml:"tree"`
	// SQL is the database DSN (go-sql-driver/mysql form).
	SQL string `yaml:"sql"`
}

// Enabled reports whether a Trillian backend is configured.
func (s StorageConfig) Enabled() bool { return s.Trillian != "" || s.Tree != 0 || s.SQL != "" }

func (s StorageConfig) check() error {
	if !s.Enabled() {
		return nil
	}
	if s.Trillian == "" || s.Tree == 0 || s.SQL == "" {
		return fmt.Errorf("storage: Trillian needs all three of trillian (HOST:PORT), tree (the id from consentledger trillian init) and sql (the database DSN)")
	}
	return nil
}
