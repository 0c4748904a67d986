package kafka_test

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/causeway-go/causeway/producers/kafka"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka/kafkatest"
	"github.com/causeway-go/causeway/topology"
)

// memberEnv, when set to a broker list, makes the test binary a group
// member process for TestKilledMemberFailover instead of running tests.
const memberEnv = "CAUSEWAY_TEST_KAFKA_MEMBER"

func TestMain(m *testing.M) {
	if brokers := os.Getenv(memberEnv); brokers != "" {
		os.Exit(memberProcess(brokers))
	}
	os.Exit(m.Run())
}

// memberProcess runs one member of group "failover" with the default
// session timeout and heartbeat, printing "holds N" each time the number
// of partitions it holds changes, until it is killed.
func memberProcess(brokers string) int {
	cons, err := kafka.New(kafka.Config[[]byte]{Brokers: brokers, GroupID: "failover", Topics: []string{"events"}, Logger: quiet})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	top, err := topology.New(topology.Spec[[]byte]{
		Producer: topology.ProducerSpec[[]byte]{Producer: cons, Keep: stages.Block},
	})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // in case nobody kills it
	defer cancel()
	go func() {
		held := -1
		for tick := time.NewTicker(20 * time.Millisecond); ctx.Err() == nil; <-tick.C {
			if n := len(cons.Stats().Partitions["events"]); n != held {
				held = n
				fmt.Println("holds", n)
			}
		}
	}()
	if err := top.Run(ctx); err != nil {
		fmt.Println("error", err)
		return 1
	}
	return 0
}

// TestKilledMemberFailover: of two members sharing a 4-partition topic,
// one (a process of its own) is killed with SIGKILL, so it never leaves the
// group. With the default SessionTimeout and HeartbeatInterval the
// survivor holds all four partitions within 10 s and consumes them to the
// end.
func TestKilledMemberFailover(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.SeedTopics(4, "events"))
	produce(t, c, "events", 0, 400)
	ends := endOffsets(t, c, "events")

	// The other member, in a process of its own, joins first.
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), memberEnv+"="+c.Brokers)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	holds := make(chan string, 16)
	go func() {
		defer close(holds)
		for sc := bufio.NewScanner(stdout); sc.Scan(); {
			holds <- sc.Text()
		}
	}()
	await := func(want string) {
		t.Helper()
		deadline := time.After(60 * time.Second)
		for {
			select {
			case line, ok := <-holds:
				if !ok {
					t.Fatalf("the member process ended before it printed %q", want)
				}
				if strings.HasPrefix(line, "error") {
					t.Fatalf("member process: %s", line)
				}
				if line == want {
					return
				}
			case <-deadline:
				t.Fatalf("the member process did not print %q within 60s", want)
			}
		}
	}
	await("holds 4")

	survivor := newConsumer(t, c, "failover", func(cfg *kafka.Config[string]) { cfg.Properties = nil }) // default timeouts
	_, stop := startTopology(t, survivor, newCollector().handle, topoOpts{})
	defer stop()
	await("holds 2")
	waitFor(t, 60*time.Second, "the survivor to hold two partitions", func() bool {
		return len(survivor.Stats().Partitions["events"]) == 2
	})

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitFor(t, 30*time.Second, "the survivor to hold all four partitions", func() bool {
		return len(survivor.Stats().Partitions["events"]) == 4
	})
	took := time.Since(killed)
	t.Logf("partitions moved %v after the kill (SessionTimeout %v, HeartbeatInterval %v)", took.Round(10*time.Millisecond),
		kafka.DefaultSessionTimeout, kafka.DefaultHeartbeatInterval)
	if took > 10*time.Second {
		t.Fatalf("the killed member's partitions moved after %v, want within 10s", took)
	}
	waitFor(t, 30*time.Second, "the group to commit every partition to its end", func() bool {
		return maps.Equal(committed(t, c, "failover", "events"), ends)
	})
}
