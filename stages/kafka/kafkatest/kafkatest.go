// Package kafkatest starts in-process Kafka clusters (kfake) for tests and
// reads back what they hold. Nothing here is skipped: every test that needs
// a broker gets one.
package kafkatest

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Cluster is an in-process Kafka cluster.
type Cluster struct {
	*kfake.Cluster
	// Brokers is the bootstrap list, "host:port,host:port".
	Brokers string
}

// Defaults for test clusters: one broker, fast consumer-group timings.
var defaultOpts = []kfake.Opt{
	kfake.NumBrokers(1),
	kfake.GroupMinSessionTimeout(500 * time.Millisecond),
	kfake.BrokerConfigs(map[string]string{
		"group.consumer.heartbeat.interval.ms": "200",
		"group.consumer.session.timeout.ms":    "3000",
	}),
}

// Start starts a cluster with the test defaults (one broker, fast group
// timings) plus opts, and closes it when the test ends.
func Start(t testing.TB, opts ...kfake.Opt) *Cluster {
	t.Helper()
	c, err := New(opts...)
	if err != nil {
		t.Fatalf("kafkatest: start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// New starts a cluster with the test defaults plus opts; the caller closes
// it.
func New(opts ...kfake.Opt) (*Cluster, error) {
	c, err := kfake.NewCluster(append(append([]kfake.Opt(nil), defaultOpts...), opts...)...)
	if err != nil {
		return nil, err
	}
	addrs := c.ListenAddrs()
	return &Cluster{Cluster: c, Brokers: strings.Join(addrs, ",")}, nil
}

// FreePort returns a loopback TCP port nothing listens on right now.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// Client returns a franz-go client on the cluster, closed when the test
// ends.
func (c *Cluster) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(strings.Split(c.Brokers, ",")...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// CreateTopic creates topic with the given number of partitions.
func (c *Cluster) CreateTopic(t testing.TB, topic string, partitions int32) {
	t.Helper()
	cl := c.Client(t)
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = topic
	rt.NumPartitions = partitions
	rt.ReplicationFactor = 1
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("kafkatest: create topic %s: %v", topic, err)
	}
	if err := kerrOf(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("kafkatest: create topic %s: %v", topic, err)
	}
}

// Produce writes records to topic synchronously (for tests that need data
// to consume).
func (c *Cluster) Produce(t testing.TB, records ...*kgo.Record) {
	t.Helper()
	cl := c.Client(t, kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(1_000_000))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
		t.Fatalf("kafkatest: produce %d records: %v", len(records), err)
	}
}

// ReadAll returns every record topic holds now, by partition then offset.
func (c *Cluster) ReadAll(ctx context.Context, topic string) ([]*kgo.Record, error) {
	return ReadAllFrom(ctx, c.Brokers, topic)
}

// ReadAllFrom is ReadAll on the cluster at brokers ("host:port,...").
func ReadAllFrom(ctx context.Context, brokers, topic string) ([]*kgo.Record, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := EndOffsets(ctx, cl, topic)
	if err != nil {
		return nil, err
	}
	want := map[int32]int64{}
	parts := map[int32]kgo.Offset{}
	for p, end := range ends {
		if end > 0 {
			want[p] = end
			parts[p] = kgo.NewOffset().AtStart()
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts})
	var out []*kgo.Record
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("kafkatest: read %s: %d records so far: %w", topic, len(out), err)
		}
		for _, fe := range fs.Errors() {
			return out, fmt.Errorf("kafkatest: read %s partition %d: %w", fe.Topic, fe.Partition, fe.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := want[r.Partition]; ok && r.Offset < end {
				out = append(out, r)
				if r.Offset+1 >= end {
					delete(want, r.Partition)
				}
			}
		})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Offset < out[j].Offset
	})
	return out, nil
}

// EndOffsets returns the high watermark of each partition of topic.
func EndOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	if len(mresp.Topics) != 1 {
		return nil, fmt.Errorf("kafkatest: metadata for %s: %d topics", topic, len(mresp.Topics))
	}
	if err := kerrOf(mresp.Topics[0].ErrorCode); err != nil {
		return nil, fmt.Errorf("kafkatest: metadata for %s: %w", topic, err)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, p := range mresp.Topics[0].Partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p.Partition
		rp.Timestamp = -1 // latest
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	shards := cl.RequestSharded(ctx, req)
	out := map[int32]int64{}
	for _, sh := range shards {
		if sh.Err != nil {
			return nil, sh.Err
		}
		for _, t := range sh.Resp.(*kmsg.ListOffsetsResponse).Topics {
			for _, p := range t.Partitions {
				if err := kerrOf(p.ErrorCode); err != nil {
					return nil, fmt.Errorf("kafkatest: list offsets %s/%d: %w", t.Topic, p.Partition, err)
				}
				out[p.Partition] = p.Offset
			}
		}
	}
	return out, nil
}

// CommittedOffsets returns the offsets group committed for topic.
func CommittedOffsets(ctx context.Context, cl *kgo.Client, group, topic string) (map[int32]int64, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	ends, err := EndOffsets(ctx, cl, topic)
	if err != nil {
		return nil, err
	}
	for p := range ends {
		rt.Partitions = append(rt.Partitions, p)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	if err := kerrOf(resp.ErrorCode); err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerrOf(p.ErrorCode); err != nil {
				return nil, err
			}
			out[p.Partition] = p.Offset
		}
	}
	return out, nil
}

func kerrOf(code int16) error { return kerr.ErrorForCode(code) }

// GroupMembers returns how many members a consumer group has and its state
// (e.g. "Stable", "PreparingRebalance", "Empty").
func GroupMembers(ctx context.Context, brokers, group string) (int, string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		return 0, "", err
	}
	defer cl.Close()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, "", err
	}
	if len(resp.Groups) != 1 {
		return 0, "", fmt.Errorf("kafkatest: describe group %s: %d groups in the answer", group, len(resp.Groups))
	}
	g := resp.Groups[0]
	if err := kerrOf(g.ErrorCode); err != nil {
		return 0, "", err
	}
	return len(g.Members), g.State, nil
}
