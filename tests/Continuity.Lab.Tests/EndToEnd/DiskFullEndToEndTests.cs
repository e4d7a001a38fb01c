using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Xunit;
using Xunit.Abstractions;

namespace Continuity.Lab.Tests.EndToEnd;

/// <summary>
/// The full-disk rule on the lab: every node's state directory is a small file system of its own (up --state-size, a
/// tmpfs in the node's mount namespace), the primary's is filled under running clients, and the owner moves the
/// application to a standby with room by a planned switch; a standby's is filled, and the primary names it as refusing
/// checkpoints. Real node processes, NFQUEUE, CRIU and namespaces.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class DiskFullEndToEndTests(ITestOutputHelper output) : IDisposable
{
    private static readonly string[] Nodes = ["n1", "n2", "n3"];
    private readonly LabDriver _lab = new();
    private LabApps? _appsDriver;
    private LabApps Apps => _appsDriver ??= new LabApps(_lab, output);

    public void Dispose()
    {
        _lab.Dispose();
        _appsDriver?.Dispose();
    }

    private string WriteConfig()
    {
        var file = Path.Combine(_lab.StateDir, "kv.hocon");
        File.WriteAllText(file, $$"""
            continuity.supervision { min-free-disk-percent = 5, on-disk-full = switch, check-interval = 2s }
            continuity.apps.kv {
              command = ["{{Apps.Root}}/build/testserver/ct-kv", "--tcp", "7000"]
              vip = "198.18.0.50/24"
              ports = ["tcp/7000"]
              checkpoint-interval = 2s
            }
            """);
        return file;
    }

    private int PidOf(string node)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(_lab.StateDir, "lab.json")));
        return doc.RootElement.GetProperty("hosts").EnumerateArray().Single(h => h.GetProperty("name").GetString() == node)
            .GetProperty("pid").GetInt32();
    }

    /// <summary>Runs a command in the mount namespace of <paramref name="node"/>'s process (where its tmpfs is).</summary>
    private string InNodeMounts(string node, params string[] command)
    {
        var start = new ProcessStartInfo("nsenter") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-t", PidOf(node).ToString(CultureInfo.InvariantCulture), "-m", "--" }.Concat(command)) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        var text = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{string.Join(' ', command)} in {node}'s mount namespace: exit {p.ExitCode}: {text}");
        return text;
    }

    /// <summary>Size and free bytes of the file system holding <paramref name="node"/>'s state directory, as it sees it.</summary>
    private (long Size, long Free) Disk(string node)
    {
        var numbers = InNodeMounts(node, "df", "-B1", "--output=size,avail", StateOf(node)).Split('\n')[1]
            .Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(long.Parse).ToArray();
        return (numbers[0], numbers[1]);
    }

    private string StateOf(string node) => Path.Combine(_lab.StateDir, node, "state");

    [RootFact]
    public void A_standby_whose_disk_cannot_hold_a_checkpoint_is_named_in_the_alarm_and_the_mib_until_it_stores_one_again()
    {
        Assert.True(_lab.Run("up", "--nodes", "3", "--config", WriteConfig(), "--timeout", "90", "--state-size", "256M") == 0,
            _lab.LastOutput + _lab.LastError);
        var primary = Apps.WaitUntilProtected(Nodes, 2, TimeSpan.FromSeconds(90));
        var standby = Nodes.First(n => n != primary);
        string? HeldBy(JsonElement app) => app.GetProperty("standbys").EnumerateArray()
            .Single(s => s.GetProperty("node").GetString() == standby).GetProperty("checkpointId").GetString();
        var held = HeldBy(Apps.App(primary)!.Value);

        // No client: the journal writes nothing, so the checkpoints alone meet the full disk (a journal that did would
        // get the standby dropped instead, another test's subject).
        var ballast = Path.Combine(StateOf(standby), "ballast");
        InNodeMounts(standby, "fallocate", "-l", (Disk(standby).Free - (64 << 10)).ToString(CultureInfo.InvariantCulture), ballast);
        output.WriteLine($"filled {standby}'s disk: {Disk(standby).Free} bytes free");

        string? alarm = null;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(30) && !(alarm = Apps.App(primary)?.GetProperty("alarm").GetString() ?? "").Contains($"standby {standby} refused"))
            Thread.Sleep(500);
        output.WriteLine($"alarm after {clock.Elapsed.TotalSeconds:F1} s: {alarm}");
        Assert.Contains($"standby {standby} refused", alarm);
        Assert.Contains("No space left on device", alarm);
        var view = Apps.App(primary)!.Value;
        Assert.Equal(held, HeldBy(view)); // it keeps the checkpoint it had
        Assert.True(view.GetProperty("standbys").EnumerateArray().All(s => s.GetProperty("ready").GetBoolean()), view.ToString());
        List<JsonElement> Refusals() => Apps.Get(primary, "/v1/mib") is { } mib
            ? mib.GetProperty("nodes").EnumerateArray().Single(n => n.GetProperty("node").GetString() == primary)
                .GetProperty("apps").EnumerateArray().Single().GetProperty("checkpointRefusals").EnumerateArray().ToList()
            : [];
        clock.Restart();
        while (clock.Elapsed < TimeSpan.FromSeconds(30) && Refusals().Count == 0) Thread.Sleep(500); // the MIB is sampled
        var refusal = Assert.Single(Refusals());
        Assert.Equal(standby, refusal.GetProperty("standby").GetString());
        Assert.True(refusal.GetProperty("checkpoints").GetInt32() >= 1);

        InNodeMounts(standby, "rm", ballast);
        clock.Restart();
        while (clock.Elapsed < TimeSpan.FromSeconds(30) && (Apps.App(primary)?.GetProperty("alarm").GetString() ?? "").Contains("refused"))
            Thread.Sleep(500);
        output.WriteLine($"alarm cleared {clock.Elapsed.TotalSeconds:F1} s after the disk was freed");
        view = Apps.App(primary)!.Value;
        Assert.DoesNotContain("refused", view.GetProperty("alarm").GetString() ?? "");
        Assert.NotEqual(held, HeldBy(view));
    }

    [RootFact]
    public void A_primary_whose_state_disk_fills_hands_over_to_a_standby_with_room_without_losing_a_byte()
    {
        Assert.True(_lab.Run("up", "--nodes", "3", "--config", WriteConfig(), "--timeout", "90", "--state-size", "256M") == 0,
            _lab.LastOutput + _lab.LastError);
        var primary = Apps.WaitUntilProtected(Nodes, 2, TimeSpan.FromSeconds(90));
        var (size, free) = Disk(primary);
        output.WriteLine($"primary {primary}: its state file system has {free} of {size} bytes free");
        Assert.InRange(size, 200L << 20, 300L << 20); // the node's own tmpfs, not the host's disk

        var client = Apps.StartClient(connections: 10, durationSeconds: 40);
        Thread.Sleep(TimeSpan.FromSeconds(6));

        // Fill it to 3 % free: below min-free-disk-percent = 5, with room left for the final checkpoint of the switch.
        var fill = free - size * 3 / 100;
        InNodeMounts(primary, "fallocate", "-l", fill.ToString(CultureInfo.InvariantCulture), Path.Combine(StateOf(primary), "ballast"));
        output.WriteLine($"filled {fill} bytes: {Disk(primary).Free} bytes free now");
        var clock = Stopwatch.StartNew();

        string? now = null;
        while (clock.Elapsed < TimeSpan.FromSeconds(60) && ((now = Apps.PrimaryNow(Nodes)) is null || now == primary)) Thread.Sleep(500);
        Assert.True(now is not null && now != primary, $"kv did not leave {primary} within 60 s\n{Apps.Diagnostics()}");
        output.WriteLine($"switched {primary} -> {now} {clock.Elapsed.TotalSeconds:F1} s after the disk filled");
        var view = Apps.App(now)!.Value;
        var reason = view.GetProperty("lastSwitch").GetProperty("reason").GetString();
        output.WriteLine($"switch reason: {reason}");
        Assert.StartsWith($"supervision: the disk of primary {primary} has ", reason);
        Assert.EndsWith("% free, below min-free-disk-percent = 5", reason);

        Apps.AssertEveryByteExactlyOnce(Apps.Finish(client, TimeSpan.FromSeconds(120)), connections: 10, udp: false);
    }
}
