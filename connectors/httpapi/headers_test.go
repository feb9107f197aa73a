package httpapi

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := t0
	date := func(t time.Time) string { return t.Format(http.TimeFormat) }
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
		ok     bool
	}{
		{"absent", nil, 0, false},
		{"seconds", map[string]string{"Retry-After": "120"}, 120 * time.Second, true},
		{"fraction", map[string]string{"Retry-After": "1.5"}, 1500 * time.Millisecond, true},
		{"negative", map[string]string{"Retry-After": "-3"}, 0, false},
		{"garbage", map[string]string{"Retry-After": "soon"}, 0, false},
		{"date from now", map[string]string{"Retry-After": date(now.Add(90 * time.Second))}, 90 * time.Second, true},
		{"date from server Date", map[string]string{"Date": date(now.Add(-2 * time.Minute)), "Retry-After": date(now.Add(-2*time.Minute + 10*time.Second))}, 10 * time.Second, true},
		// A server clock more than MaxClockSkew off is ignored: ours
		// measures the date.
		{"server Date an hour behind", map[string]string{"Date": date(now.Add(-time.Hour)), "Retry-After": date(now.Add(-time.Hour + 10*time.Second))}, 0, true},
		{"server Date an hour ahead", map[string]string{"Date": date(now.Add(time.Hour)), "Retry-After": date(now.Add(time.Hour + 10*time.Second))}, time.Hour + 10*time.Second, true},
		{"server Date years behind", map[string]string{"Date": date(now.AddDate(-30, 0, 0)), "Retry-After": date(now)}, 0, true},
		{"date in the past", map[string]string{"Retry-After": date(now.Add(-time.Minute))}, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.header {
				h.Set(k, v)
			}
			got, ok := RetryAfter(h, now)
			if got != tc.want || ok != tc.ok {
				t.Errorf("RetryAfter = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestServerTime(t *testing.T) {
	tests := []struct {
		date string
		want time.Time
	}{
		{"", time.Time{}},
		{"garbage", time.Time{}},
		{"Tue, 10 Mar 2026 12:00:00 GMT", t0},
		{"Tuesday, 10-Mar-26 12:00:00 GMT", t0},
	}
	for _, tc := range tests {
		h := http.Header{}
		if tc.date != "" {
			h.Set("Date", tc.date)
		}
		if got := ServerTime(h); !got.Equal(tc.want) {
			t.Errorf("ServerTime(%q) = %v, want %v", tc.date, got, tc.want)
		}
	}
}
