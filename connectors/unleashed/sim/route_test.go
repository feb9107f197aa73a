package sim

import "testing"

func TestRoute(t *testing.T) {
	const g = "6dcdf497-2d5d-4e56-8000-000000000008"
	for _, tc := range []struct {
		path string
		want routed
		ok   bool
	}{
		{"/Products", routed{endpoint: "products", page: 1}, true},
		{"/Products/3", routed{endpoint: "products", page: 3}, true},
		{"/Products/Page/2", routed{endpoint: "products", page: 2}, true},
		{"/Products/" + g, routed{endpoint: "products", page: 1, id: g}, true},
		{"/StockOnHand/" + g + "/AllWarehouses", routed{endpoint: "stockonhand", page: 1, id: g, allWarehouses: true}, true},
		{"/StockOnHand/" + g, routed{}, false},    // totals of one product: not served
		{"/ProductPrices/" + g, routed{}, false},  // no read by id
		{"/Products/not-a-guid", routed{}, false}, // neither a page nor a Guid
		{"/Products/" + g + "/AllWarehouses", routed{}, false},
	} {
		got, ok := route(tc.path)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("route(%q) = %+v %v, want %+v %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}
