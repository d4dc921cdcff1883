package device

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/iotctl/iotctl/pkg/simulate"
)

// liveStatus is a fleet's display on a terminal: a progress bar of the
// devices connected while the fleet connects, and one line of counters
// below it, both redrawn in place. Lines written to it (Write) appear
// above them. It is drawn with mpb, which keeps several lines in place
// at once and prints other lines above them (progressbar/v3 draws one
// bar and leaves the printing of other lines to the caller).
type liveStatus struct {
	p     *mpb.Progress
	bar   *mpb.Bar // devices connected, until all are
	line  *mpb.Bar // the counters
	stats func() simulate.Stats

	barMu sync.Mutex // serializes connectedChanged

	mu        sync.Mutex
	rateAcked int64     // acknowledged messages at rateTime
	rateTime  time.Time // when the rate was last measured
	rate      float64   // msgs/s over the last measured second
	stopOnce  sync.Once
}

// rateWindow is how long the status line measures msgs/s over.
const rateWindow = time.Second

// newLiveStatus draws the status of a fleet of devices on w, reading
// its counters from stats at each redraw (mpb's refresh, every 150
// ms). extra are mpb options for tests (a manual refresh).
func newLiveStatus(w io.Writer, devices int, stats func() simulate.Stats, extra ...mpb.ContainerOption) (*liveStatus, error) {
	l := &liveStatus{stats: stats, rateTime: time.Now()}
	// The caller has decided w is a terminal (IOStreams.ErrTTY): mpb
	// need not find out again, and would not through a wrapper.
	opts := append([]mpb.ContainerOption{mpb.WithOutput(w), mpb.ForceTTY(), mpb.WithAutoRefresh()}, extra...)
	l.p = mpb.New(opts...)
	var err error
	l.bar, err = l.p.Add(int64(devices), mpb.BarStyle().Build(),
		mpb.PrependDecorators(decor.Name("connecting "), decor.CountersNoUnit("%d/%d", decor.WCSyncSpace)),
		mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace)),
		mpb.BarRemoveOnComplete())
	if err != nil {
		return nil, err
	}
	l.line, err = l.p.Add(0, mpb.NopStyle().Build(), mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
		return l.render(time.Now())
	})))
	if err != nil {
		l.p.Shutdown()
		return nil, err
	}
	return l, nil
}

// render is the status line at now, measuring msgs/s once per
// rateWindow.
func (l *liveStatus) render(now time.Time) string {
	s := l.stats()
	l.mu.Lock()
	if d := now.Sub(l.rateTime); d >= rateWindow {
		l.rate = float64(s.Acked-l.rateAcked) / d.Seconds()
		l.rateAcked, l.rateTime = s.Acked, now
	}
	s.MsgsPerSecond = l.rate
	l.mu.Unlock()
	return statusLine(s)
}

// statusLine is the one line of a fleet's counters, under 80 columns
// up to 10,000 devices.
func statusLine(s simulate.Stats) string {
	line := fmt.Sprintf("%d/%d connected, %.0f msg/s, %d acked, %d errors, %d reconnects, %s",
		s.Connected, s.Devices, s.MsgsPerSecond, s.Acked, s.Errors, s.Reconnects,
		(time.Duration(s.ElapsedSeconds) * time.Second).String())
	if s.Provisioned > 0 {
		// A fleet through DPS: how many DPS has assigned so far.
		line = fmt.Sprintf("%d provisioned, ", s.Provisioned) + line
	}
	return line
}

// connectedChanged moves the progress bar to the number of devices
// connected now; it disappears once all are.
func (l *liveStatus) connectedChanged() {
	// Under the lock, the last count read is the last one set.
	l.barMu.Lock()
	defer l.barMu.Unlock()
	l.bar.SetCurrent(l.stats().Connected)
}

// Write prints lines above the status, at its next redraw.
func (l *liveStatus) Write(b []byte) (int, error) { return l.p.Write(b) }

// stop draws the status a last time and leaves it on the screen (the
// progress bar too, if not all devices connected); lines written after
// stop are lost.
func (l *liveStatus) stop() {
	l.stopOnce.Do(func() {
		if !l.bar.Completed() {
			l.bar.Abort(false)
		}
		l.line.SetTotal(-1, true)
		l.p.Wait()
	})
}
