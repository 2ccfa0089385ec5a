package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// ClientID is the Kafka client id of every connection the ingester
// opens. With the balancer's user data it is how an ingester is told from
// other members of its consumer group.
const ClientID = "apimeter-ingest"

// The ingesters' group protocol: range assignment under a name of its
// own, with user data that says "apimeter ingester" (and, on the
// embedded broker, carries the secret it admits members by). Ingesters
// offer no other protocol, so on any broker a consumer speaking only the
// standard ones cannot share a group with running ingesters: the
// coordinator refuses whichever joins second with
// INCONSISTENT_GROUP_PROTOCOL.
const (
	balancerProtocol = "apimeter-range"
	balancerMarker   = "apimeter-ingester/1"
)

type ingesterBalancer struct {
	secret string // the embedded broker's; empty elsewhere
}

func (ingesterBalancer) ProtocolName() string { return balancerProtocol }

func (b ingesterBalancer) UserData() ([]byte, error) {
	if b.secret == "" {
		return []byte(balancerMarker), nil
	}
	return []byte(balancerMarker + " " + b.secret), nil
}

// AssignGroups gives partitions (by range) only to members whose user
// data marks them as ingesters: a client that borrowed the protocol's
// name without it gets none, and the group check names it.
func (ingesterBalancer) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	var ours []kafka.GroupMember
	for _, m := range members {
		if isIngesterData(m.UserData) {
			ours = append(ours, m)
		}
	}
	a := kafka.RangeGroupBalancer{}.AssignGroups(ours, partitions)
	for _, m := range members {
		if _, ok := a[m.ID]; !ok {
			a[m.ID] = map[string][]int{}
		}
	}
	return a
}

func isIngesterData(userData []byte) bool {
	return bytes.Equal(userData, []byte(balancerMarker)) || bytes.HasPrefix(userData, []byte(balancerMarker+" "))
}

// foreignMember is a member of the ingesters' group that is not an
// apimeter ingester. Only what identifies its client is kept: no member
// id, no user data.
type foreignMember struct {
	clientID, host string
}

func (f foreignMember) String() string { return fmt.Sprintf("%q at %s", f.clientID, f.host) }

// foreignMembers describes the group and lists the members that are not
// ingesters: a client id other than ClientID, or, once the group is
// stable (brokers show member metadata only then), no ingester user
// data. It sets the foreign-members gauge and warns when the list
// changes.
func (in *Ingester) foreignMembers(ctx context.Context) ([]foreignMember, error) {
	resp, err := in.client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{in.cfg.Group}})
	if err != nil {
		return nil, fmt.Errorf("kafka group %s: describe: %w", in.cfg.Group, err)
	}
	var foreign []foreignMember
	for _, g := range resp.Groups {
		if g.GroupID != in.cfg.Group {
			continue
		}
		if g.Error != nil && !errors.Is(g.Error, kafka.GroupIdNotFound) {
			return nil, fmt.Errorf("kafka group %s: describe: %w", in.cfg.Group, g.Error)
		}
		stable := g.GroupState == "Stable"
		for _, m := range g.Members {
			if m.ClientID == ClientID && (!stable || isIngesterData(m.MemberMetadata.UserData)) {
				continue
			}
			foreign = append(foreign, foreignMember{clientID: m.ClientID, host: m.ClientHost})
		}
	}
	slices.SortFunc(foreign, func(a, b foreignMember) int { return strings.Compare(a.String(), b.String()) })
	in.metrics.foreign.Set(float64(len(foreign)))

	in.groupMu.Lock()
	changed := !slices.Equal(foreign, in.lastForeign)
	in.lastForeign = foreign
	in.groupMu.Unlock()
	if changed && len(foreign) > 0 {
		in.log.Warn("consumers that are not apimeter ingesters are in the ingesters' group: records they take are never stored (stop them, or give them a group of their own)",
			"group", in.cfg.Group, "members", describeMembers(foreign))
	} else if changed {
		in.log.Info("no foreign members left in the ingesters' group", "group", in.cfg.Group)
	}
	return foreign, nil
}

func describeMembers(ms []foreignMember) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return strings.Join(parts, ", ")
}

// checkGroup is the kafka readiness check's part about the group.
func (in *Ingester) checkGroup(ctx context.Context) error {
	foreign, err := in.foreignMembers(ctx)
	if err != nil {
		return err
	}
	if len(foreign) > 0 {
		return fmt.Errorf("kafka group %s has members that are not apimeter ingesters: %s", in.cfg.Group, describeMembers(foreign))
	}
	return nil
}

// watchGroup runs the group check every GroupCheckInterval until ctx
// ends, so foreign members are noticed (gauge, warning) without anyone
// asking /readyz.
func (in *Ingester) watchGroup(ctx context.Context) {
	t := time.NewTicker(in.cfg.GroupCheckInterval)
	defer t.Stop()
	for {
		if _, err := in.foreignMembers(ctx); err != nil && ctx.Err() == nil {
			in.log.Debug("group check", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
