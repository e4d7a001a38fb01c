using Continuity.Lab.Apps;
using Xunit;

namespace Continuity.Lab.Tests.Apps;

public class NodeLogsTests : IDisposable
{
    private readonly string _kept = Directory.CreateTempSubdirectory("ct-digest-").FullName;

    public void Dispose() => Directory.Delete(_kept, recursive: true);

    private void NodeLog(string node, params string[] lines)
    {
        Directory.CreateDirectory(Path.Combine(_kept, node));
        File.WriteAllLines(Path.Combine(_kept, node, "node.log"), lines);
    }

    [Fact]
    public void Kept_logs_include_the_criu_restore_logs_of_every_node()
    {
        var stateDir = Directory.CreateTempSubdirectory("ct-state-").FullName;
        var repo = Directory.CreateTempSubdirectory("ct-repo-").FullName;
        try
        {
            var image = Path.Combine(stateDir, "n2", "state", "apps", "kv", "checkpoints", "e4-1", "image");
            Directory.CreateDirectory(image);
            File.WriteAllText(Path.Combine(stateDir, "n2", "node.log"), "[ERROR] restore failed");
            File.WriteAllText(Path.Combine(image, "restore.log"), "Error (criu/sk-inet.c): Can't connect inet socket back");
            File.WriteAllText(Path.Combine(image, "pages-1.img"), "not a log");

            var kept = NodeLogs.Keep(repo, stateDir, "run1");

            Assert.Equal("[ERROR] restore failed", File.ReadAllText(Path.Combine(kept, "n2", "node.log")));
            Assert.Contains("Can't connect inet socket back",
                File.ReadAllText(Path.Combine(kept, "n2", "state", "apps", "kv", "checkpoints", "e4-1", "image", "restore.log")));
            Assert.Empty(Directory.GetFiles(kept, "*.img", SearchOption.AllDirectories));
        }
        finally
        {
            Directory.Delete(stateDir, recursive: true);
            Directory.Delete(repo, recursive: true);
        }
    }

    [Fact]
    public void A_digest_merges_the_notable_lines_of_every_node_in_time_order_since_the_run_began()
    {
        NodeLog("n1",
            "[WARNING][11/30/2026 09:59:59.000Z][Thread 0004][x] an earlier run's warning",
            "[INFO][11/30/2026 10:00:02.000Z][Thread 0004][x] [kv] checkpoint e1-2: frozen at mark 10, dumping",
            "[WARNING][11/30/2026 10:00:05.500Z][Thread 0004][x] Marking node(s) as UNREACHABLE [n2]");
        NodeLog("n2",
            "[INFO][11/30/2026 10:00:04.250Z][Thread 0013][x] [kv] taking over as primary of epoch 3",
            "an unstamped continuation line");
        var runLog = string.Join('\n', Enumerable.Range(1, 10).Select(t => $"ct-kv-client: t={t}s requests=1")) + "\n[10:00:01.000 +   0.0 s] fault: crashed primary n1\n";

        var digest = NodeLogs.WriteDigest(_kept, runLog, new DateTime(2026, 11, 30, 10, 0, 0, DateTimeKind.Utc));

        Assert.Equal(digest, File.ReadAllText(Path.Combine(_kept, NodeLogs.DigestFile)));
        Assert.Contains("fault: crashed primary n1", digest);
        Assert.Contains("ct-kv-client: t=1s", digest);
        Assert.Contains("ct-kv-client: t=6s", digest);
        Assert.DoesNotContain("ct-kv-client: t=2s", digest);
        Assert.DoesNotContain("an earlier run's warning", digest);
        Assert.DoesNotContain("checkpoint e1-2", digest);
        var takeover = digest.IndexOf("n2: [INFO][11/30/2026 10:00:04.250Z]", StringComparison.Ordinal);
        var unreachable = digest.IndexOf("n1: [WARNING][11/30/2026 10:00:05.500Z]", StringComparison.Ordinal);
        Assert.True(takeover > 0 && unreachable > takeover, digest);
    }
}
