package upstream

import (
	"time"
)

// outcome classifies one upstream try for outlier detection and retries.
type outcome int

const (
	okResponse     outcome = iota // status < 500
	status5xx                     // 500, 501, 505...
	gatewayStatus                 // 502, 503, 504
	connectFailed                 // dial failed or timed out
	resetBefore                   // connection closed/reset before the response
	refusedStream                 // HTTP/2 REFUSED_STREAM
	tryTimeout                    // per-try (or route) timeout fired
	downstreamGone                // the client went away: nobody's fault upstream
)

func classifyStatus(code int) outcome {
	switch {
	case code == 502 || code == 503 || code == 504:
		return gatewayStatus
	case code >= 500:
		return status5xx
	}
	return okResponse
}

// outlierPolicy is OutlierConfig with defaults applied.
type outlierPolicy struct {
	consec5xx, consecGw int
	interval            time.Duration
	base, maxTime       time.Duration
	maxPercent          int
}

func newOutlierPolicy(c *OutlierConfig) *outlierPolicy {
	if c == nil {
		return nil
	}
	p := &outlierPolicy{consec5xx: c.Consecutive5xx, consecGw: c.ConsecutiveGatewayErrors, interval: c.Interval,
		base: c.BaseEjectionTime, maxTime: c.MaxEjectionTime, maxPercent: c.MaxEjectionPercent}
	if p.consec5xx == 0 {
		p.consec5xx = 5
	}
	if p.interval == 0 {
		p.interval = 10 * time.Second
	}
	if p.base == 0 {
		p.base = 30 * time.Second
	}
	if p.maxTime == 0 {
		p.maxTime = 300 * time.Second
	}
	if p.maxTime < p.base {
		p.maxTime = p.base
	}
	if p.maxPercent == 0 {
		p.maxPercent = 10
	}
	return p
}

// record updates e's counters with one outcome and reports whether e is to
// be ejected now, and until when. ejected and total count the cluster's
// endpoints currently ejected and all of them, for max_ejection_percent
// (one endpoint may always be ejected, as in Envoy).
func (p *outlierPolicy) record(e *endpoint, o outcome, now time.Time, ejected, total int) (bool, time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch o {
	case downstreamGone:
		return false, time.Time{}
	case okResponse:
		e.consec5, e.consecGw = 0, 0
		return false, time.Time{}
	case status5xx:
		e.consec5++
		e.consecGw = 0
	default: // gateway errors and locally originated failures count for both
		e.consec5++
		e.consecGw++
	}
	trip := e.consec5 >= p.consec5xx || (p.consecGw > 0 && e.consecGw >= p.consecGw)
	if !trip || !e.available(now.UnixNano()) {
		return false, time.Time{}
	}
	if ejected > 0 && (ejected+1)*100 > p.maxPercent*total {
		return false, time.Time{}
	}
	// The multiplier decays by one for every interval spent in service since
	// the last ejection ended.
	if e.ejection > 0 && !e.lastEnd.IsZero() && now.After(e.lastEnd) {
		e.ejection -= int(now.Sub(e.lastEnd) / p.interval)
		if e.ejection < 0 {
			e.ejection = 0
		}
	}
	e.ejection++
	d := time.Duration(e.ejection) * p.base
	if d > p.maxTime || d <= 0 {
		d = p.maxTime
	}
	until := now.Add(d)
	e.consec5, e.consecGw = 0, 0
	e.lastEnd = until
	e.ejectedUntil.Store(until.UnixNano())
	return true, until
}
