using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Akka.Actor;
using Continuity.Core.Supervision;
using Continuity.Linux.Supervision;
using Xunit;

namespace Continuity.Node.Tests.Management;

/// <summary>One real node answering GET /v1/mib and GET /metrics.</summary>
public sealed class SoloNodeFixture : IAsyncLifetime
{
    public TestNode Node { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Node = await TestNode.StartAsync("solo");
        await Node.WaitForUp(1);
    }

    public async Task DisposeAsync() => await Node.DisposeAsync();
}

public sealed class MibSpecs(SoloNodeFixture fixture) : IClassFixture<SoloNodeFixture>
{
    private TestNode Node => fixture.Node;

    [Fact]
    public async Task The_mib_lists_this_node_with_plausible_figures()
    {
        var (status, body, _) = await Node.Get("/v1/mib");

        Assert.Equal(HttpStatusCode.OK, status);
        var root = JsonDocument.Parse(body).RootElement;
        Assert.Equal("solo", root.GetProperty("self").GetString());
        var node = Assert.Single(root.GetProperty("nodes").EnumerateArray());
        Assert.Equal("solo", node.GetProperty("node").GetString());
        Assert.Equal(Node.Address, node.GetProperty("address").GetString());
        Assert.True(node.GetProperty("reachable").GetBoolean());
        Assert.InRange(node.GetProperty("cpuPercent").GetDouble(), 0, 100);
        Assert.True(node.GetProperty("memoryTotalBytes").GetInt64() > 0);
        Assert.InRange(node.GetProperty("memoryUsedBytes").GetInt64(), 1, node.GetProperty("memoryTotalBytes").GetInt64());
        Assert.True(node.GetProperty("diskTotalBytes").GetInt64() > 0);
        Assert.InRange(node.GetProperty("diskFreeBytes").GetInt64(), 0, node.GetProperty("diskTotalBytes").GetInt64());
        // The SQLite journal lives in the state dir (created when the node starts persisting; 0 before).
        Assert.True(node.GetProperty("journalBytes").GetInt64() >= 0);
        Assert.Equal(JsonValueKind.Array, node.GetProperty("queues").ValueKind);
        Assert.Empty(node.GetProperty("apps").EnumerateArray()); // no continuity.apps declared
        Assert.True(DateTimeOffset.Parse(node.GetProperty("sampledAt").GetString()!) > DateTimeOffset.UtcNow.AddMinutes(-1));
    }

    [Fact]
    public async Task Metrics_parse_as_prometheus_text_and_carry_the_node_figures()
    {
        var (status, body, contentType) = await Node.Get("/metrics");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.StartsWith("text/plain; version=0.0.4", contentType);
        var families = PrometheusText.Parse(body);
        Assert.All(families.Values, f =>
        {
            Assert.StartsWith("continuity_", f.Name);
            Assert.NotEmpty(f.Help);
            if (f.Type == "counter") Assert.EndsWith("_total", f.Name);
        });
        double NodeValue(string name) =>
            Assert.Single(families[name].Samples, s => s.Labels.GetValueOrDefault("node") == "solo").Value;
        Assert.True(NodeValue("continuity_node_memory_bytes") > 0);
        Assert.True(NodeValue("continuity_node_memory_total_bytes") >= NodeValue("continuity_node_memory_bytes"));
        Assert.InRange(NodeValue("continuity_node_cpu_percent"), 0, 100);
        Assert.True(NodeValue("continuity_node_disk_total_bytes") > 0);
        Assert.True(NodeValue("continuity_node_disk_free_bytes") >= 0);
        Assert.True(NodeValue("continuity_node_journal_bytes") >= 0);
        Assert.Equal("gauge", families["continuity_queue_backlog_packets"].Type);
        Assert.Equal("counter", families["continuity_queue_dropped_total"].Type);
        Assert.Contains("continuity_app_log_depth_packets", families.Keys);
        Assert.Contains("continuity_app_checkpoint_freeze_seconds", families.Keys);
        Assert.Contains("continuity_app_takeovers_total", families.Keys);
    }

    [Fact]
    public void A_primarys_standby_lag_is_a_figure_per_standby_in_the_mib_and_the_metrics()
    {
        const string n2 = "akka.tcp://continuity@10.0.0.2:4053";
        var now = DateTimeOffset.UtcNow;
        var lags = new[] { new Continuity.Core.Capture.StandbyLag(n2, 41, 12, TimeSpan.FromSeconds(11)) }.ToList();
        var app = new IntrospectionProtocol.AppFigures("kv", Continuity.Core.Election.AppRole.Primary, 2, 53, 41, 12, null, null, 0, 0, 0, null, lags);
        var mib = new IntrospectionProtocol.NodeMib("n1", "akka.tcp://continuity@10.0.0.1:4053", now,
            new IntrospectionProtocol.NodeFigures(1, 1, 2, 1, 2, [], 0, null), [app]);
        string NameOf(string address) => address == n2 ? "n2" : address;

        var dto = Continuity.Node.Management.MibJson.FromMib(mib, NameOf, now);
        var lag = Assert.Single(Assert.Single(dto.Apps).StandbyLags);
        Assert.Equal(("n2", n2, 41L, 12L, 11_000L), (lag.Standby, lag.Address, lag.Acked, lag.PacketsBehind, lag.OldestWaitMs));

        var families = PrometheusText.Parse(Continuity.Node.Management.PrometheusMetrics.Write(mib, NameOf, now));
        var seconds = Assert.Single(families["continuity_standby_lag_seconds"].Samples);
        Assert.Equal(("n2", "kv", "n1", 11.0), (seconds.Labels["standby"], seconds.Labels["app"], seconds.Labels["node"], seconds.Value));
        Assert.Equal(12, Assert.Single(families["continuity_standby_lag_packets"].Samples).Value);
    }

    [Fact]
    public void A_standby_refusing_checkpoints_is_named_in_the_mib_and_counted_in_the_metrics()
    {
        const string n3 = "akka.tcp://continuity@10.0.0.3:4053";
        var now = DateTimeOffset.UtcNow;
        var since = now.AddSeconds(-20);
        var refusals = new[] { new Continuity.Core.Checkpoint.CheckpointerProtocol.Refusal(n3, 4, since, "No space left on device") }.ToList();
        var app = new IntrospectionProtocol.AppFigures("kv", Continuity.Core.Election.AppRole.Primary, 2, 53, 41, 12, null, null, 0, 0, 0, null,
            CheckpointRefusals: refusals);
        var mib = new IntrospectionProtocol.NodeMib("n1", "akka.tcp://continuity@10.0.0.1:4053", now,
            new IntrospectionProtocol.NodeFigures(1, 1, 2, 1, 2, [], 0, null), [app]);
        string NameOf(string address) => address == n3 ? "n3" : address;

        var dto = Continuity.Node.Management.MibJson.FromMib(mib, NameOf, now);
        var refusal = Assert.Single(Assert.Single(dto.Apps).CheckpointRefusals);
        Assert.Equal(("n3", n3, 4, since.ToString("O"), "No space left on device"),
            (refusal.Standby, refusal.Address, refusal.Checkpoints, refusal.Since, refusal.Reason));

        var families = PrometheusText.Parse(Continuity.Node.Management.PrometheusMetrics.Write(mib, NameOf, now));
        var refused = Assert.Single(families["continuity_standby_checkpoints_refused"].Samples);
        Assert.Equal(("n3", "kv", 4.0), (refused.Labels["standby"], refused.Labels["app"], refused.Value));
    }

    [Fact]
    public void Stage_times_are_a_prometheus_histogram_per_stage_and_standby_and_a_summary_in_the_mib()
    {
        const string n2 = "akka.tcp://continuity@10.0.0.2:4053";
        var now = DateTimeOffset.UtcNow;
        var replicate = Continuity.Core.Metrics.Histogram.Latency();
        replicate.Record(System.Diagnostics.Stopwatch.Frequency / 1000); // 1 ms
        replicate.Record(System.Diagnostics.Stopwatch.Frequency / 1000);
        var sizes = Continuity.Core.Metrics.Histogram.Sizes();
        sizes.Record(3);
        var stages = new[] { replicate.Snapshot("replicate", n2), sizes.Snapshot("batch-packets") }.ToList();
        var app = new IntrospectionProtocol.AppFigures("kv", Continuity.Core.Election.AppRole.Primary, 2, 53, 41, 12, null, null, 0, 0, 0, null,
            Stages: stages);
        var mib = new IntrospectionProtocol.NodeMib("n1", "akka.tcp://continuity@10.0.0.1:4053", now,
            new IntrospectionProtocol.NodeFigures(1, 1, 2, 1, 2, [], 0, null), [app]);
        string NameOf(string address) => address == n2 ? "n2" : address;

        var dto = Assert.Single(Continuity.Node.Management.MibJson.FromMib(mib, NameOf, now).Apps).Stages;
        Assert.Equal(("replicate", "n2", "us", 2L), (dto[0].Stage, dto[0].Standby, dto[0].Unit, dto[0].Count));
        Assert.InRange(dto[0].P50!.Value, 700, 1500);
        Assert.Equal(("batch-packets", "packets", 3.0), (dto[1].Stage, dto[1].Unit, dto[1].Mean));

        var families = PrometheusText.Parse(Continuity.Node.Management.PrometheusMetrics.Write(mib, NameOf, now));
        var buckets = families["continuity_path_stage_seconds"].Samples.Where(s => s.Name.EndsWith("_bucket")).ToList();
        Assert.All(buckets, b => Assert.Equal(("n2", "replicate", "kv"), (b.Labels["standby"], b.Labels["stage"], b.Labels["app"])));
        Assert.Equal(2, buckets.Single(b => b.Labels["le"] == "+Inf").Value);
        Assert.Equal(0, buckets.First().Value); // cumulative: nothing at or below 10 µs
        Assert.Equal(2, families["continuity_path_stage_seconds"].Samples.Single(s => s.Name.EndsWith("_count")).Value);
        Assert.Equal(1, families["continuity_standby_batch_packets"].Samples.Single(s => s.Name.EndsWith("_count")).Value);
    }

    [Theory]
    [InlineData("/metrics")]
    [InlineData("/v1/mib")]
    public async Task Without_the_token_the_mib_and_the_metrics_are_refused_by_default(string path)
    {
        var (status, _, _) = await Node.Get(path, withToken: false);

        Assert.Equal(HttpStatusCode.Unauthorized, status);
    }

    [Fact]
    public void The_linux_reader_reads_plausible_figures_of_this_machine()
    {
        var dir = Directory.CreateTempSubdirectory("ct-probe-").FullName;
        try
        {
            File.WriteAllBytes(Path.Combine(dir, "journal.db"), new byte[4096]);
            File.WriteAllBytes(Path.Combine(dir, "journal.db-wal"), new byte[100]);
            File.WriteAllBytes(Path.Combine(dir, "unrelated.txt"), new byte[999]);

            var r = new ProcNodeProbe(dir).Read();

            Assert.Null(r.Error);
            Assert.InRange(NodeIntrospector.CpuPercent(null, r.Cpu), 0, 100);
            Assert.True(r.Cpu.Total > 0);
            Assert.True(r.MemoryTotalBytes > 0);
            Assert.InRange(r.MemoryAvailableBytes, 0, r.MemoryTotalBytes);
            Assert.True(r.DiskTotalBytes > 0);
            Assert.InRange(r.DiskFreeBytes, 0, r.DiskTotalBytes);
            Assert.Equal(4196, r.JournalBytes);
            Assert.All(r.Queues, q => Assert.True(q.Backlog >= 0 && q.QueueDropped >= 0 && q.UserDropped >= 0));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void The_linux_reader_takes_backlog_and_drops_from_the_kernels_queue_table()
    {
        // queue_number peer_portid queue_total copy_mode copy_range queue_dropped user_dropped id_sequence 1
        var queues = ProcNodeProbe.ParseQueues("""
                1  12345     7 2 65531     3     4      900  1
                0  23456     0 2 65531     0     0       10  1
            """);

        Assert.Equal([new(0, 0, 0, 0), new IntrospectionProtocol.QueueFigures(1, 7, 3, 4)], queues);
    }

    [Fact]
    public void The_linux_reader_counts_idle_and_iowait_as_not_busy()
    {
        var cpu = ProcNodeProbe.ParseStat("cpu  100 0 50 800 50 0 0 0 30 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n");

        Assert.Equal(new CpuTicks(150, 1000), cpu);
    }
}

/// <summary>A node whose operator let Prometheus scrape without the token.</summary>
public sealed class OpenMetricsSpecs
{
    [Fact]
    public async Task With_metrics_require_token_off_metrics_need_no_token_but_everything_else_still_does()
    {
        await using var node = await TestNode.StartAsync("open", extra: "continuity.management.metrics-require-token = off");

        var (metrics, body, _) = await node.Get("/metrics", withToken: false);
        var (mib, _, _) = await node.Get("/v1/mib", withToken: false);

        Assert.Equal(HttpStatusCode.OK, metrics);
        Assert.Contains("continuity_node_memory_bytes{node=\"open\"}", body);
        Assert.Equal(HttpStatusCode.Unauthorized, mib);
    }
}

/// <summary>Two real nodes on 127.0.0.1 in one cluster.</summary>
public sealed class ClusterMibSpecs
{
    [Fact]
    public async Task The_mib_of_one_node_lists_both_and_a_member_that_does_not_answer_is_listed_unreachable_without_blocking()
    {
        await using var a = await TestNode.StartAsync("alpha", extra: "continuity.supervision.ask-timeout = 1s");
        await a.WaitForUp(1);
        await using var b = await TestNode.StartAsync("bravo", seed: a.ClusterPort);
        await a.WaitForUp(2);

        // The first remote question can miss the timeout on a busy machine (connections, serializers warming up): ask again.
        List<JsonElement> nodes = [];
        for (var i = 0; i < 20; i++)
        {
            var (status, body, _) = await a.Get("/v1/mib");
            Assert.Equal(HttpStatusCode.OK, status);
            nodes = JsonDocument.Parse(body).RootElement.GetProperty("nodes").EnumerateArray().ToList();
            if (nodes.All(n => n.GetProperty("reachable").GetBoolean())) break;
        }
        Assert.Equal(["alpha", "bravo"], nodes.Select(n => n.GetProperty("node").GetString()));
        Assert.All(nodes, n =>
        {
            Assert.True(n.GetProperty("reachable").GetBoolean());
            Assert.True(n.GetProperty("memoryTotalBytes").GetInt64() > 0);
        });
        Assert.Equal(b.Address, nodes[1].GetProperty("address").GetString());

        // bravo stays a member but its introspector is gone: alpha must not wait for it longer than ask-timeout.
        await b.Host.System.ActorSelection("/user/" + NodeIntrospector.Name).Ask<ActorIdentity>(new Identify(1), TimeSpan.FromSeconds(5))
            .ContinueWith(t => t.Result.Subject!.GracefulStop(TimeSpan.FromSeconds(5))).Unwrap();
        var watch = Stopwatch.StartNew();
        var (_, after, _) = await a.Get("/v1/mib");
        watch.Stop();

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"took {watch.Elapsed}");
        var listed = JsonDocument.Parse(after).RootElement.GetProperty("nodes").EnumerateArray().ToList();
        var bravo = Assert.Single(listed, n => n.GetProperty("node").GetString() == "bravo");
        Assert.False(bravo.GetProperty("reachable").GetBoolean());
        Assert.Contains("did not answer within 1 s", bravo.GetProperty("error").GetString());
        Assert.Equal(JsonValueKind.Null, bravo.GetProperty("cpuPercent").ValueKind);
        Assert.True(Assert.Single(listed, n => n.GetProperty("node").GetString() == "alpha").GetProperty("reachable").GetBoolean());
    }
}

/// <summary>The Grafana dashboard in deploy/grafana asks only for what the node exports.</summary>
public sealed class GrafanaDashboardSpecs(SoloNodeFixture fixture) : IClassFixture<SoloNodeFixture>
{
    [Fact]
    public async Task Every_metric_the_dashboard_queries_is_one_the_node_exports()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Continuity.Akka.sln"))) dir = dir.Parent;
        Assert.NotNull(dir);
        var dashboard = File.ReadAllText(Path.Combine(dir!.FullName, "deploy", "grafana", "continuity.json"));
        JsonDocument.Parse(dashboard); // valid JSON
        var (_, body, _) = await fixture.Node.Get("/metrics");
        var exported = PrometheusText.Parse(body).Keys.ToHashSet();

        var used = System.Text.RegularExpressions.Regex.Matches(dashboard, "continuity_[a-z_]+").Select(m => m.Value).ToHashSet();

        Assert.NotEmpty(used);
        Assert.Empty(used.Except(exported));
    }
}
