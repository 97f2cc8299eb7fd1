package http

// RouteInfo is a route of the API as the route table declares it.
type RouteInfo struct {
	Method, Path               string
	Auth, Admin, Body, Limited bool
}

// Routes returns the route table, so that tests outside the package can
// check what it declares against what the server does.
func Routes() []RouteInfo {
	out := make([]RouteInfo, len(routes))
	for i, rt := range routes {
		out[i] = RouteInfo{Method: rt.Method, Path: rt.Path, Auth: rt.Auth, Admin: rt.Admin, Body: rt.Body, Limited: rt.Limited}
	}
	return out
}
