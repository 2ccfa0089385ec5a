package ingest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The embedded broker's guard of the ingesters' consumer group.
//
// Anyone who reaches the embedded broker may produce: that is what it is
// for. But a consumer that joins the ingesters' group by name takes
// partitions from them, and a client that commits the group's offsets
// moves the ledger the exactly-once argument rests on: the records it
// skips are never stored, with no lag and nothing in the dead-letter
// topic to show for it. So the broker admits to that group only members
// whose join carries the data directory's secret (the ingester's
// balancer puts it in its user data), and refuses from anyone else every
// request that writes the group's offsets or removes the group.

// secretFile holds the secret, in the embedded broker's directory.
const secretFile = "ingest-group.secret"

// LoadGroupSecret returns the secret the embedded broker asks of members
// of the ingesters' group, kept in dir: made on first use (32 random
// bytes, hex), read on every later start, readable by its owner only.
func LoadGroupSecret(dir string) (string, error) {
	path := filepath.Join(dir, secretFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createGroupSecret(dir, path)
	}
	if err != nil {
		return "", fmt.Errorf("embedded kafka: read the group secret: %w", err)
	}
	secret := strings.TrimSpace(string(b))
	if raw, err := hex.DecodeString(secret); err != nil || len(raw) != 32 {
		return "", fmt.Errorf("embedded kafka: %s is not a group secret apimeter wrote; remove it to make a new one", path)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return "", fmt.Errorf("embedded kafka: restrict the group secret: %w", err)
		}
	}
	return secret, nil
}

// createGroupSecret writes a new secret to a temporary file and links it
// into place, so a crash never leaves half a secret and a file that
// appeared meanwhile wins.
func createGroupSecret(dir, path string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("embedded kafka: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("embedded kafka: group secret: %w", err)
	}
	secret := hex.EncodeToString(raw)
	f, err := os.CreateTemp(dir, ".secret-*") // mode 0600
	if err != nil {
		return "", fmt.Errorf("embedded kafka: write the group secret: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(secret + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(f.Name(), path)
	}
	if errors.Is(err, fs.ErrExist) {
		return LoadGroupSecret(dir)
	}
	if err != nil {
		return "", fmt.Errorf("embedded kafka: write the group secret: %w", err)
	}
	return secret, nil
}

// guardedKeys are the requests the guard looks at: joining, committing,
// deleting offsets or the group, describing it (which would show the
// member ids a commit is accepted with), and the group protocols the
// ingester does not speak (KIP-848 consumer groups, share groups), which
// would otherwise be a way in without a join.
var guardedKeys = []kmsg.Key{
	kmsg.JoinGroup, kmsg.OffsetCommit, kmsg.TxnOffsetCommit, kmsg.OffsetDelete, kmsg.DeleteGroups,
	kmsg.DescribeGroups, kmsg.ConsumerGroupHeartbeat, kmsg.ShareGroupHeartbeat,
}

// logEvery is the least time between two warnings of refusals.
const logEvery = 10 * time.Second

// groupGuard runs as kfake control functions, which the broker calls one
// at a time: its fields need no lock.
type groupGuard struct {
	cluster *kfake.Cluster
	group   string
	secret  []byte
	// stale are the members the broker restored from its log at start:
	// they joined before this process and were not admitted by it.
	stale   map[string]bool
	log     *slog.Logger
	refused *prometheus.CounterVec

	lastLog time.Time
	unseen  int // refusals since the last warning
}

// installGroupGuard makes c guard group with secret.
func installGroupGuard(c *kfake.Cluster, group, secret string, log *slog.Logger, reg prometheus.Registerer) {
	g := &groupGuard{
		cluster: c, group: group, secret: []byte(secret), stale: map[string]bool{}, log: log,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apimeter_embedded_kafka_refused_total",
			Help: "Requests the embedded broker refused for the ingesters' consumer group, by request (a client that is not an apimeter ingester).",
		}, []string{"request"}),
	}
	if reg != nil {
		reg.MustRegister(g.refused)
	}
	if info := c.GroupInfo(group); info != nil {
		for _, m := range info.Members {
			g.stale[m.MemberID] = true
		}
	}
	for _, key := range guardedKeys {
		g.cluster.ControlKey(int16(key), g.control)
	}
}

func (g *groupGuard) control(req kmsg.Request) (kmsg.Response, error, bool) {
	g.cluster.KeepControl()
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		if r.Group != g.group || (g.carriesSecret(r.Protocols) && !g.stale[r.MemberID]) {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		names := make([]string, len(r.Protocols))
		for i, p := range r.Protocols {
			names[i] = p.Name
		}
		g.refuse(req, "protocols", strings.Join(names, ","))
		return resp, nil, true

	case *kmsg.OffsetCommitRequest:
		if r.Group != g.group || g.admitted(r.Version >= 1, r.MemberID, r.Generation) {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, kerr.GroupAuthorizationFailed.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		g.refuse(req, "generation", r.Generation)
		return resp, nil, true

	case *kmsg.TxnOffsetCommitRequest:
		if r.Group != g.group || g.admitted(r.Version >= 3, r.MemberID, r.Generation) {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, kerr.GroupAuthorizationFailed.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		g.refuse(req, "generation", r.Generation)
		return resp, nil, true

	case *kmsg.OffsetDeleteRequest:
		// Ingesters never delete offsets: no one may.
		if r.Group != g.group {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.OffsetDeleteResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		g.refuse(req)
		return resp, nil, true

	case *kmsg.DeleteGroupsRequest:
		// The broker cannot answer part of a request, so one naming the
		// ingesters' group is refused whole.
		if !slices.Contains(r.Groups, g.group) {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.DeleteGroupsResponse)
		for _, name := range r.Groups {
			rg := kmsg.NewDeleteGroupsResponseGroup()
			rg.Group, rg.ErrorCode = name, kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, rg)
		}
		g.refuse(req)
		return resp, nil, true

	case *kmsg.DescribeGroupsRequest:
		if !slices.Contains(r.Groups, g.group) {
			return nil, nil, false
		}
		return g.describe(r), nil, true

	case *kmsg.ConsumerGroupHeartbeatRequest:
		if r.Group != g.group {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		g.refuse(req)
		return resp, nil, true

	case *kmsg.ShareGroupHeartbeatRequest:
		if r.GroupID != g.group {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.ShareGroupHeartbeatResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		g.refuse(req)
		return resp, nil, true
	}
	return nil, nil, false
}

// carriesSecret reports whether a join offers the ingesters' protocol
// with the secret in its user data.
func (g *groupGuard) carriesSecret(protocols []kmsg.JoinGroupRequestProtocol) bool {
	for _, p := range protocols {
		if p.Name != balancerProtocol {
			continue
		}
		secret, ok := bytes.CutPrefix(memberUserData(p.Metadata), []byte(balancerMarker+" "))
		if ok && subtle.ConstantTimeCompare(secret, g.secret) == 1 {
			return true
		}
	}
	return false
}

// admitted reports whether a commit comes from an admitted member. Every
// member the broker holds, except those it restored at start, passed
// the join check: the join is the only way in, and kafka-go's joins
// (v1, v2) get their member id only in the response, so the guard
// cannot list ids as it admits them; it lets the broker check that the
// id is a member of the current generation, as it does for any group.
// What it refuses is what the broker would accept from a non-member: a
// commit without a member or generation ("simple" commits, which an
// empty group takes from anyone), and commits of restored members.
func (g *groupGuard) admitted(hasMember bool, member string, generation int32) bool {
	return hasMember && member != "" && generation >= 0 && !g.stale[member]
}

// memberUserData reads the user data of a consumer protocol's member
// metadata (version, topics, user data, then fields later versions
// add). kafka-go writes version 1 without the owned partitions that
// version adds, so kmsg's strict reader would refuse its metadata.
func memberUserData(meta []byte) []byte {
	r := kbin.Reader{Src: meta}
	r.Int16()
	n := r.ArrayLen()
	for i := int32(0); i < n && r.Ok(); i++ {
		_ = r.String()
	}
	data := r.NullableBytes()
	if !r.Ok() {
		return nil
	}
	return data
}

// describe answers a DescribeGroups naming the ingesters' group from the
// broker's snapshot of its groups. For that group, member ids are
// withheld (with a member id and the generation, a commit would be
// accepted) and so is the user data, which carries the secret: each
// member it admitted shows the ingesters' marker, each it restored none.
// Other groups named in the same request are described from the same
// snapshot, without the protocol name, which it does not hold.
func (g *groupGuard) describe(r *kmsg.DescribeGroupsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, name := range r.Groups {
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group = name
		info := g.cluster.GroupInfo(name)
		if info == nil {
			rg.State = "Dead"
			if r.Version >= 6 {
				rg.ErrorCode = kerr.GroupIDNotFound.Code
			}
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		ours := name == g.group
		stable := info.State == "Stable"
		rg.State, rg.ProtocolType = info.State, "consumer"
		if ours && stable {
			rg.Protocol = balancerProtocol
		}
		for _, m := range info.Members {
			rm := kmsg.NewDescribeGroupsResponseGroupMember()
			rm.MemberID, rm.InstanceID, rm.ClientID, rm.ClientHost = m.MemberID, m.InstanceID, m.ClientID, m.ClientHost
			if stable {
				meta := kmsg.NewConsumerMemberMetadata()
				meta.Topics = m.SubscribedTopics
				assignment := kmsg.NewConsumerMemberAssignment()
				for topic, parts := range m.Assignment {
					at := kmsg.NewConsumerMemberAssignmentTopic()
					at.Topic, at.Partitions = topic, parts
					assignment.Topics = append(assignment.Topics, at)
				}
				if ours && !g.stale[m.MemberID] {
					meta.UserData = []byte(balancerMarker)
				}
				rm.ProtocolMetadata, rm.MemberAssignment = meta.AppendTo(nil), assignment.AppendTo(nil)
			}
			if ours {
				sum := sha256.Sum256([]byte(m.MemberID))
				rm.MemberID = "withheld-" + hex.EncodeToString(sum[:6])
			}
			rg.Members = append(rg.Members, rm)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

// refuse counts a refusal and warns, at most once per logEvery: a client
// that retries in a loop shows in the counter, not as a flood of lines.
// Nothing logged names a member id or the secret.
func (g *groupGuard) refuse(req kmsg.Request, attrs ...any) {
	name := kmsg.NameForKey(req.Key())
	g.refused.WithLabelValues(name).Inc()
	g.unseen++
	if now := time.Now(); now.Sub(g.lastLog) >= logEvery {
		g.log.Warn("embedded kafka refused a client that is not an apimeter ingester: only the ingester joins its consumer group and writes its offsets",
			append([]any{"group", g.group, "request", name, "refused_since_last_warning", g.unseen}, attrs...)...)
		g.lastLog, g.unseen = now, 0
	}
}
