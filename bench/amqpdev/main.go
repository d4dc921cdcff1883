// Command amqpdev measures devices over AMQP against `iotctl hub serve`
// (started as a separate process, in memory): first many devices over
// few connections, one session and one put-token per device as pooled
// C# clients and gateways do, each sending one acknowledged message,
// and the hub's resident memory per device; then the aggregate
// telemetry rate of a smaller set of devices that send as fast as the
// hub acknowledges.
//
//	go run ./bench/amqpdev -devices 10000 -conns 10 -senders 100 -duration 10s
//
// The client is github.com/Azure/go-amqp over TLS to the hub's port.
// Beside it, in the same run, -node devices of the official Node SDK
// (azure-iot-device + azure-iot-device-amqp, one AMQP connection each,
// all in one node process running node_amqp.js) connect after the
// go-amqp devices and send during the same window, so the figures of
// both clients stand side by side. The Node SDK connects to port 5671,
// so with -node the hub listens on the standard ports of -ip (root or
// CAP_NET_BIND_SERVICE); its modules come from test/interop (npm ci
// when missing).
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/bench/internal/benchkit"
	"github.com/iotctl/iotctl/pkg/sas"
	"github.com/iotctl/iotctl/pkg/service"
	"github.com/iotctl/iotctl/pkg/simulate"
)

func main() {
	n := flag.Int("devices", 10000, "devices to connect")
	conns := flag.Int("conns", 10, "AMQP connections they share")
	senders := flag.Int("senders", 100, "devices (of those connected) that then send as fast as they can")
	window := flag.Int("window", 32, "unacknowledged messages per sending device")
	dur := flag.Duration("duration", 10*time.Second, "how long the senders send")
	bin := flag.String("iotctl", "", "iotctl binary for the hub (default: build one from this repository)")
	flag.IntVar(&nodeOpts.devices, "node", 100, "Node SDK devices (one AMQP connection each) that connect after the go-amqp devices and send beside them (0: none)")
	flag.IntVar(&nodeOpts.window, "node-window", 32, "sendEvent calls in flight per Node device")
	flag.StringVar(&nodeOpts.ip, "ip", "127.0.0.79", "with -node: loopback address for the hub, which binds 8883, 443 and 5671 there")
	pprofAddr := flag.String("pprof-addr", "", "serve the hub's pprof here (127.0.0.1:0 for any port), printed at start")
	flag.StringVar(&profiles.heap, "heapprofile", "", "write the hub's heap profile (after a collection) to this file once every device is connected, the same as text with the runtime's memory statistics to FILE.txt, and its goroutine profile to FILE.goroutines")
	flag.StringVar(&profiles.cpu, "cpuprofile", "", "write the hub's CPU profile while the senders send to this file, and its allocation profile since it started (with few -devices, mostly the window's) to FILE.allocs")
	client := flag.String("client", "lean", "the senders' AMQP client: lean (-senders more devices over min(-conns, -senders) connections of a hand-encoded client that writes pre-encoded transfer frames and little else, so that the cores go to the hub) or go-amqp (the first -senders of the go-amqp devices)")
	flag.BoolVar(&leanBatch, "lean-batch", false, "with -client lean: write each device's transfers that a disposition lets it send in one write (default: one write per transfer frame, as go-amqp and the device SDKs write)")
	flag.Parse()
	if *client != "lean" && *client != "go-amqp" {
		fmt.Fprintf(os.Stderr, "amqpdev: -client %q: give lean or go-amqp\n", *client)
		os.Exit(2)
	}
	if *pprofAddr == "" { // for the hub's allocation count, and the profiles
		*pprofAddr = "127.0.0.1:0"
	}
	if err := run(*n, *conns, *senders, *window, *dur, *bin, *pprofAddr, *client); err != nil {
		fmt.Fprintln(os.Stderr, "amqpdev:", err)
		os.Exit(1)
	}
}

// nodeOpts is the Node fleet's part of the run.
var nodeOpts struct {
	devices, window int
	ip              string
}

// leanBatch is -lean-batch.
var leanBatch bool

// profiles are the files the hub's profiles go to (none when empty).
var profiles struct{ heap, cpu string }

// device is one device's part of a shared connection.
type device struct {
	id  string
	snd *amqp.Sender
}

func run(n, conns, senders, window int, dur time.Duration, bin, pprofAddr, client string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	if bin == "" {
		dir, err := os.MkdirTemp("", "amqpdev-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if bin, err = benchkit.Build(ctx, dir); err != nil {
			return err
		}
	}
	hubOpts := &benchkit.HubOptions{PprofAddr: pprofAddr, MetricsAddr: "127.0.0.1:0"}
	interop := filepath.Join(benchkit.RepoRoot(), "test", "interop")
	if nodeOpts.devices > 0 {
		if err := benchkit.NodeReady(ctx, interop, "azure-iot-device-amqp"); err != nil {
			return err
		}
		hubOpts.Addr, hubOpts.StandardPorts = nodeOpts.ip+":8883", true
	}
	h, err := benchkit.StartHub(ctx, bin, hubOpts)
	if err != nil {
		return err
	}
	defer h.Stop()
	if h.Info.PprofAddress != "" {
		fmt.Printf("hub pprof: http://%s/debug/pprof/\n", h.Info.PprofAddress)
	}
	ids := simulate.FleetIDs("amqp-", n)
	start := time.Now()
	keys, err := h.CreateDevices(ctx, ids)
	if err != nil {
		return err
	}
	fmt.Printf("%d devices created in %.1fs\n", n, time.Since(start).Seconds())
	tc, err := service.TLSConfig(h.Info.CAFile, nil)
	if err != nil {
		return err
	}
	tc.ServerName = hostOnly(h.Info.HostName)
	addr := h.Info.Addresses[0]

	rss0 := benchkit.RSSKB(h.PID())
	start = time.Now()
	devs := make([]*device, n)
	var acked atomic.Int64
	err = benchkit.Parallel(conns, conns, func(c int) error {
		conn, err := dial(ctx, addr, h.Info.HostName, tc)
		if err != nil {
			return err
		}
		cbs, err := newCBS(ctx, conn)
		if err != nil {
			return err
		}
		for i := c; i < n; i += conns {
			d, err := connectDevice(ctx, conn, cbs, h.Info.HostName, ids[i], keys[i])
			if err != nil {
				return err
			}
			if err := d.snd.Send(ctx, &amqp.Message{Data: [][]byte{[]byte(`{"hello":1}`)}}, nil); err != nil {
				return fmt.Errorf("%s: first message: %w", ids[i], err)
			}
			acked.Add(1)
			devs[i] = d
		}
		return nil
	})
	if err != nil {
		return err
	}
	connected := time.Since(start)
	rss1 := benchkit.RSSKB(h.PID())
	fmt.Printf("%d devices over %d connections: connected, authorized (one put-token each) and one message acknowledged each in %.1fs; acknowledged %d\n",
		n, conns, connected.Seconds(), acked.Load())
	fmt.Printf("hub RSS: %d KB before, %d KB after; %.2f KB per device\n", rss0, rss1, float64(rss1-rss0)/float64(n))
	if profiles.heap != "" {
		base := "http://" + h.Info.PprofAddress + "/debug/pprof/"
		if err := benchkit.FetchPprof(ctx, base+"heap?gc=1", profiles.heap); err != nil {
			return err
		}
		if err := benchkit.FetchPprof(ctx, base+"heap?debug=1", profiles.heap+".txt"); err != nil {
			return err
		}
		if err := benchkit.FetchPprof(ctx, base+"goroutine?debug=1", profiles.heap+".goroutines"); err != nil {
			return err
		}
	}

	var fleet *nodeFleet
	if nodeOpts.devices > 0 {
		rss0 := benchkit.RSSKB(h.PID())
		start := time.Now()
		if fleet, err = startNodeFleet(ctx, h, interop, dur); err != nil {
			return err
		}
		defer fleet.stop()
		if err := fleet.waitReady(); err != nil {
			return err
		}
		rss1 := benchkit.RSSKB(h.PID())
		fmt.Printf("%d Node SDK devices (azure-iot-device-amqp, one connection each) opened in %.1fs; hub RSS %d KB more, %.2f KB per device\n",
			fleet.ready, time.Since(start).Seconds(), rss1-rss0, float64(rss1-rss0)/float64(max(1, fleet.ready)))
	}

	// Throughput: senders devices, window messages in flight each,
	// beside the Node fleet: the first senders go-amqp devices, or
	// senders more devices of the lean client.
	senders = min(senders, n)
	body := []byte(`{"temperature":21.5,"humidity":40}`)
	var lean []*leanConn
	if client == "lean" {
		if lean, err = connectLean(ctx, h, tc, addr, senders, min(conns, senders), window, body); err != nil {
			return err
		}
		defer func() {
			for _, c := range lean {
				c.close()
			}
		}()
	}
	var sent atomic.Int64
	sctx, stop := context.WithTimeout(ctx, dur)
	defer stop()
	profiled := make(chan error, 1)
	if profiles.cpu != "" {
		secs := max(1, int(dur.Round(time.Second)/time.Second)-1)
		go func() {
			profiled <- benchkit.FetchPprof(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", h.Info.PprofAddress, secs), profiles.cpu)
		}()
	} else {
		profiled <- nil
	}
	in0, err := messagesIn(ctx, h.Info.MetricsURL)
	if err != nil {
		return err
	}
	mallocs0, err := hubMallocs(ctx, h.Info.PprofAddress)
	if err != nil {
		return err
	}
	cpu0, own0 := benchkit.CPUTime(h.PID()), benchkit.CPUTime(os.Getpid())
	if fleet != nil {
		if err := fleet.start(); err != nil {
			return err
		}
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for _, c := range lean {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := c.pump(t0.Add(dur), 10*time.Second)
			sent.Add(n)
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	for i := range senders {
		if lean != nil {
			break
		}
		for range window {
			wg.Add(1)
			go func(d *device) {
				defer wg.Done()
				for sctx.Err() == nil {
					err := d.snd.Send(sctx, &amqp.Message{Data: [][]byte{body}, ApplicationProperties: map[string]any{"n": int64(1)}}, nil)
					if err != nil {
						// go-amqp may time out on its own timer for
						// sctx's deadline before sctx's own fires.
						if sctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
							firstErr.CompareAndSwap(nil, err)
						}
						return
					}
					sent.Add(1)
				}
			}(devs[i])
		}
	}
	wg.Wait()
	el := time.Since(t0)
	cpu, own := benchkit.CPUTime(h.PID())-cpu0, benchkit.CPUTime(os.Getpid())-own0
	perMsg := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(max(1, sent.Load())) }
	fmt.Printf("%d %s devices x %d in flight for %.1fs: %d messages acknowledged, %.0f msg/s; CPU: hub %.1fs (%.1f µs per message), the %s clients %.1fs (%.1f µs per message)\n",
		senders, client, window, el.Seconds(), sent.Load(), float64(sent.Load())/el.Seconds(), cpu.Seconds(), perMsg(cpu), client, own.Seconds(), perMsg(own))
	if err := <-profiled; err != nil {
		return err
	}
	if profiles.cpu != "" {
		// everything the hub allocated since it started (with few
		// devices, mostly the window's)
		if err := benchkit.FetchPprof(ctx, "http://"+h.Info.PprofAddress+"/debug/pprof/allocs", profiles.cpu+".allocs"); err != nil {
			return err
		}
	}
	var nodeAcked int64
	defer func() {
		// The hub's own count of the messages it took in, against the
		// clients' count of those it acknowledged (the Node fleet's
		// last ones may be counted by the hub and not yet by node).
		in1, err := messagesIn(ctx, h.Info.MetricsURL)
		if err != nil {
			return
		}
		fmt.Printf("the hub counted %d messages in (iotctl_hub_messages_in_total); the clients %d acknowledged\n", in1-in0, sent.Load()+nodeAcked)
		if m, err := hubMallocs(ctx, h.Info.PprofAddress); err == nil {
			fmt.Printf("hub heap allocations: %d, %.1f per message in\n", m-mallocs0, float64(m-mallocs0)/float64(max(1, in1-in0)))
		}
	}()
	if fleet != nil {
		sum, err := fleet.wait()
		if err != nil {
			return err
		}
		nodeAcked = sum.Acked
		ncpu := fleet.cpu()
		fmt.Printf("%d Node SDK devices x %d in flight for %.1fs: %d messages acknowledged, %.0f msg/s, %d errors; node CPU %.1fs (%.1f µs per message)\n",
			sum.Connected, nodeOpts.window, sum.SendS, sum.Acked, float64(sum.Acked)/max(sum.SendS, 0.001), sum.Errors,
			ncpu.Seconds(), float64(ncpu.Microseconds())/float64(max(1, sum.Acked)))
		fmt.Printf("both clients together: %.0f msg/s; hub CPU %.1f µs per message\n",
			float64(sent.Load())/el.Seconds()+float64(sum.Acked)/max(sum.SendS, 0.001),
			float64(cpu.Microseconds())/float64(max(1, sent.Load()+sum.Acked)))
		if sum.Errors > 0 {
			return fmt.Errorf("the Node SDK devices had %d errors (the first ones above)", sum.Errors)
		}
	}
	if e, ok := firstErr.Load().(error); ok {
		return fmt.Errorf("a sender failed: %w", e)
	}
	return nil
}

func hostOnly(hostPort string) string {
	if h, _, err := net.SplitHostPort(hostPort); err == nil {
		return h
	}
	return hostPort
}

func dial(ctx context.Context, addr, host string, tc *tls.Config) (*amqp.Conn, error) {
	nc, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, tc)
	if err != nil {
		return nil, err
	}
	return amqp.NewConn(ctx, nc, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous(), HostName: hostOnly(host)})
}

// cbs is a connection's $cbs link pair.
type cbs struct {
	snd *amqp.Sender
	rcv *amqp.Receiver
	seq int
}

func newCBS(ctx context.Context, c *amqp.Conn) (*cbs, error) {
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		return nil, err
	}
	snd, err := s.NewSender(ctx, "$cbs", nil)
	if err != nil {
		return nil, err
	}
	rcv, err := s.NewReceiver(ctx, "$cbs", &amqp.ReceiverOptions{TargetAddress: "cbs-" + fmt.Sprint(time.Now().UnixNano()), Credit: 10})
	if err != nil {
		return nil, err
	}
	return &cbs{snd: snd, rcv: rcv}, nil
}

// put puts a token for audience and waits for the answer.
func (c *cbs) put(ctx context.Context, audience, token string) error {
	c.seq++
	id := fmt.Sprint(c.seq)
	err := c.snd.Send(ctx, &amqp.Message{
		Properties: &amqp.MessageProperties{MessageID: id},
		ApplicationProperties: map[string]any{"operation": "put-token", "type": "servicebus.windows.net:sastoken",
			"name": audience},
		Value: token,
	}, nil)
	if err != nil {
		return err
	}
	res, err := c.rcv.Receive(ctx, nil)
	if err != nil {
		return err
	}
	_ = c.rcv.AcceptMessage(ctx, res)
	if code, _ := res.ApplicationProperties["status-code"].(int32); code != 200 {
		return errors.New("put-token: " + fmt.Sprint(res.ApplicationProperties["status-description"]))
	}
	return nil
}

// connectDevice opens the device's session, puts its token and attaches
// its telemetry sender.
func connectDevice(ctx context.Context, conn *amqp.Conn, c *cbs, host, id, key string) (*device, error) {
	k, err := sas.DecodeKey(key)
	if err != nil {
		return nil, err
	}
	aud := sas.DeviceResource(host, id)
	tok, err := sas.Sign(aud, k, &sas.SignOptions{Expiry: time.Now().Add(time.Hour)})
	if err != nil {
		return nil, err
	}
	if err := c.put(ctx, aud, tok.Encode()); err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	s, err := conn.NewSession(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: session: %w", id, err)
	}
	snd, err := s.NewSender(ctx, "/devices/"+id+"/messages/events", nil)
	if err != nil {
		return nil, fmt.Errorf("%s: sender: %w", id, err)
	}
	return &device{id: id, snd: snd}, nil
}

// connectLean creates n devices for the lean client and connects them
// over conns connections (device i on connection i%conns), each device
// sending body.
func connectLean(ctx context.Context, h *benchkit.Hub, tc *tls.Config, addr string, n, conns, window int, body []byte) ([]*leanConn, error) {
	ids := simulate.FleetIDs("lean-", n)
	keys, err := h.CreateDevices(ctx, ids)
	if err != nil {
		return nil, err
	}
	msg, err := (&amqp.Message{Data: [][]byte{body}, ApplicationProperties: map[string]any{"n": int64(1)}}).MarshalBinary()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	out := make([]*leanConn, conns)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = benchkit.Parallel(conns, conns, func(c int) error {
		lc, err := dialLean(cctx, addr, h.Info.HostName, tc, window, leanBatch)
		if err != nil {
			return fmt.Errorf("lean connection: %w", err)
		}
		out[c] = lc
		for i := c; i < n; i += conns {
			if err := lc.connect(h.Info.HostName, ids[i], keys[i], msg); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		for _, c := range out {
			if c != nil {
				c.close()
			}
		}
		return nil, err
	}
	fmt.Printf("%d lean devices over %d connections connected in %.1fs\n", n, conns, time.Since(start).Seconds())
	return out, nil
}

// get GETs url within ctx; the caller closes the body.
func get(ctx context.Context, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return http.DefaultClient.Do(req)
}

// messagesIn is the sum of the hub's iotctl_hub_messages_in_total over
// its protocols, read from its Prometheus metrics at url.
func messagesIn(ctx context.Context, url string) (int64, error) {
	res, err := get(ctx, url)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var n float64
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "iotctl_hub_messages_in_total") {
			continue
		}
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			n += v
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return int64(n), nil
}

// hubMallocs is the hub's count of heap allocations so far (the
// runtime's MemStats.Mallocs, from its pprof heap page at addr).
func hubMallocs(ctx context.Context, addr string) (int64, error) {
	res, err := get(ctx, "http://"+addr+"/debug/pprof/heap?debug=1")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# Mallocs = "); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("the hub's heap profile has no Mallocs line")
}
