// Package plans is what apimeter sells and promises: an application
// loads its plans file with LoadPlans (or takes DefaultPlans), hands the
// plans to a limits.Limiter, prices a billing period's usage with BillOf,
// reads its service-level objectives with Objectives and names raw
// request paths by their route templates with Route. The plans file is
// parsed once, every problem reported with its line.
package plans
