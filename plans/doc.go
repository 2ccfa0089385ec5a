// Package plans is what apimeter sells and promises: an application
// loads its plans file with LoadPlans (or takes DefaultPlans), hands the
// plans to a limits.Limiter, prices a billing period's usage with BillOf
// and reads its service-level objectives with Objectives. The plans
// file is parsed once, every problem reported with its line.
package plans
