package main

import "testing"

func TestShardOrdinal(t *testing.T) {
	for _, tc := range []struct {
		flag    int
		pod     string
		want    int
		wantErr bool
	}{
		{flag: 2, pod: "", want: 2},
		{flag: 0, pod: "erpsync-controller-manager-2", want: 0},
		{flag: -1, pod: "erpsync-controller-manager-2", want: 2},
		{flag: -1, pod: "erpsync-controller-manager-10", want: 10},
		{flag: -1, pod: "", wantErr: true},
		{flag: -1, pod: "manager", wantErr: true},
		{flag: -1, pod: "erpsync-controller-manager-7d9f8b-x2k4p", wantErr: true},
		{flag: -1, pod: "erpsync-controller-manager-", wantErr: true},
	} {
		got, err := shardOrdinal(tc.flag, tc.pod)
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("shardOrdinal(%d, %q) = %d, %v; want %d, error %v", tc.flag, tc.pod, got, err, tc.want, tc.wantErr)
		}
	}
}
