// The kernel tests create namespaces and iptables rules; running them one at a time keeps failures readable
// on the 2-core lab machines shared with other builds.
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]
