using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Continuity.Node.Management;
using Xunit;

namespace Continuity.Node.Tests.Management;

/// <summary>A real node (one-member cluster, real Kestrel on loopback) keeping the audit trail of what it is asked.</summary>
public sealed class AuditSpecs : IAsyncLifetime
{
    private TestNode _node = null!;
    private string AuditFile => Path.Combine(_node.Dir, "state", AuditLog.FileName);

    public async Task InitializeAsync()
    {
        _node = await TestNode.StartAsync("solo");
        await _node.WaitForUp(1);
    }

    public async Task DisposeAsync() => await _node.DisposeAsync();

    private async Task<(HttpStatusCode Status, string Body)> Post(string path, string? body, string? token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path);
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (body is not null) request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await _node.Http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private async Task<List<JsonElement>> Actions(string query = "")
    {
        var (status, body, _) = await _node.Get("/v1/history" + query);
        Assert.Equal(HttpStatusCode.OK, status);
        return JsonDocument.Parse(body).RootElement.GetProperty("entries").EnumerateArray()
            .Where(e => e.GetProperty("kind").GetString() == "action").Select(e => e.Clone()).ToList();
    }

    private static string? Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var p) && p.ValueKind == JsonValueKind.String ? p.GetString() : null;

    [Fact]
    public async Task Refused_actions_are_audited_with_their_reason()
    {
        const string wrong = "wrong-token-wrong-token-wrong-token";
        var (unauthorized, _) = await Post("/v1/cluster/down", "{\"address\":\"solo\"}", wrong);
        var (malformed, malformedBody) = await Post("/v1/cluster/leave", "{not json", _node.Token);
        var (unknown, _) = await Post("/v1/cluster/down", "{\"address\":\"nobody\"}", _node.Token);
        var (noApps, _) = await Post("/v1/apps/kv/checkpoint", null, _node.Token);

        Assert.Equal((HttpStatusCode.Unauthorized, HttpStatusCode.BadRequest, HttpStatusCode.NotFound, HttpStatusCode.ServiceUnavailable),
            (unauthorized, malformed, unknown, noApps));
        var entries = await Actions();
        Assert.Equal(4, entries.Count);
        // Newest first.
        Assert.Equal(["app checkpoint", "cluster down", "cluster leave", "cluster down"], entries.Select(e => Str(e, "action")));
        Assert.All(entries, e => Assert.Equal("refused", Str(e, "outcome")));
        Assert.Equal([503, 404, 400, 401], entries.Select(e => e.GetProperty("status").GetInt32()));

        var (app, notFound, bad, refused) = (entries[0], entries[1], entries[2], entries[3]);
        Assert.Equal("kv", Str(app, "target"));
        Assert.Contains("runs no applications", Str(app, "reason"));
        Assert.Equal("nobody", Str(notFound, "target"));
        Assert.Contains("no member 'nobody'", Str(notFound, "reason"));
        Assert.Equal(JsonDocument.Parse(malformedBody).RootElement.GetProperty("error").GetString(), Str(bad, "reason"));
        Assert.Contains("bearer token", Str(refused, "reason"));
        // The refused caller is told apart by its token's fingerprint; the token itself is kept nowhere.
        Assert.Equal(AuditLog.Fingerprint(wrong), Str(refused, "token"));
        Assert.Equal(AuditLog.Fingerprint(_node.Token), Str(bad, "token"));
        Assert.NotEqual(Str(refused, "token"), Str(bad, "token"));
        Assert.StartsWith("127.0.0.1:", Str(refused, "remote"));
        Assert.True(DateTimeOffset.Parse(Str(refused, "time")!) > DateTimeOffset.UtcNow.AddMinutes(-1));
        // A refused token touched nothing: the member is still Up.
        var (_, cluster, _) = await _node.Get("/v1/cluster");
        Assert.Contains("\"Up\"", cluster);
    }

    [Fact]
    public async Task The_audit_file_is_json_lines_readable_by_its_owner_only_and_never_holds_a_token()
    {
        await Post("/v1/cluster/down-unreachable", null, _node.Token);
        await Post("/v1/cluster/down", "{\"address\":\"solo\"}", "a-token-someone-guessed-0123456789");

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(AuditFile));
        var text = File.ReadAllText(AuditFile);
        Assert.DoesNotContain(_node.Token, text);
        Assert.DoesNotContain("a-token-someone-guessed", text);
        var lines = File.ReadAllLines(AuditFile);
        Assert.Equal(2, lines.Length);
        var accepted = JsonDocument.Parse(lines[0]).RootElement;
        Assert.Equal("cluster down-unreachable", accepted.GetProperty("action").GetString());
        Assert.Equal("accepted", accepted.GetProperty("outcome").GetString());
        Assert.Equal(202, accepted.GetProperty("status").GetInt32());
        Assert.Equal(JsonValueKind.Null, accepted.GetProperty("reason").ValueKind);
        Assert.Equal("refused", JsonDocument.Parse(lines[1]).RootElement.GetProperty("outcome").GetString());
    }

    [Fact]
    public async Task History_is_newest_first_and_cut_at_the_limit()
    {
        foreach (var who in new[] { "a", "b", "c" })
            await Post("/v1/cluster/down", $"{{\"address\":\"{who}\"}}", _node.Token);

        var two = await Actions("?limit=2");

        Assert.Equal(["c", "b"], two.Select(e => Str(e, "target")));
        var (_, body, _) = await _node.Get("/v1/history?limit=2");
        var root = JsonDocument.Parse(body).RootElement;
        Assert.Equal(2, root.GetProperty("limit").GetInt32());
        Assert.Equal(3, root.GetProperty("total").GetInt32());
        Assert.Equal("solo", root.GetProperty("node").GetString());
    }

    [Theory]
    [InlineData("?limit=0")]
    [InlineData("?limit=-5")]
    [InlineData("?limit=abc")]
    [InlineData("?limit=1.5")]
    [InlineData("?limit=10001")]
    [InlineData("?limit=")]
    [InlineData("?limit=3&limit=4")]
    public async Task A_bad_history_limit_gets_400_saying_what_is_expected(string query)
    {
        var (status, body, _) = await _node.Get("/v1/history" + query);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error").GetString()!;
        Assert.Contains("'limit'", error);
        Assert.Contains("?limit=50", error);
    }

    [Fact]
    public async Task Reading_the_history_is_not_an_action()
    {
        await _node.Get("/v1/history");
        await _node.Get("/v1/cluster");

        Assert.Empty(await Actions());
        Assert.False(File.Exists(AuditFile));
    }
}

/// <summary>The audit file on its own: bounded, oldest entries dropped first, torn lines tolerated.</summary>
public sealed class AuditLogSpecs : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ct-audit-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static AuditEntry Entry(int i) =>
        new(DateTime.UtcNow.ToString("O"), "127.0.0.1:1", "abcd0123", "cluster down", $"n{i}", null, "refused", 404, "no member");

    [Fact]
    public void The_files_stay_within_twice_the_bound_and_keep_the_newest_entries()
    {
        var log = new AuditLog(_dir, 4096);
        for (var i = 0; i < 200; i++) log.Append(Entry(i));

        Assert.InRange(new FileInfo(log.Path).Length, 1, 4096);
        Assert.InRange(new FileInfo(log.PreviousPath).Length, 1, 4096);
        Assert.Equal(2, Directory.GetFiles(_dir).Length);
        var kept = log.ReadNewestFirst();
        Assert.Equal("n199", kept[0].Target);
        Assert.InRange(kept.Count, 10, 199);
        // Contiguous: exactly the newest ones, none missing in between.
        Assert.Equal(Enumerable.Range(200 - kept.Count, kept.Count).Reverse().Select(i => $"n{i}"), kept.Select(e => e.Target));
    }

    [Fact]
    public void A_line_torn_by_a_crash_is_skipped_and_the_rest_is_read()
    {
        var log = new AuditLog(_dir, 1 << 20);
        log.Append(Entry(1));
        File.AppendAllText(log.Path, "{\"time\":\"2026-");
        var reopened = new AuditLog(_dir, 1 << 20);
        reopened.Append(Entry(2));

        Assert.Equal(["n2", "n1"], reopened.ReadNewestFirst().Select(e => e.Target));
    }

    [Fact]
    public void A_file_left_readable_by_others_is_tightened_to_its_owner()
    {
        var path = Path.Combine(_dir, AuditLog.FileName);
        File.WriteAllText(path, "");
        File.SetUnixFileMode(path, (UnixFileMode)0b110_100_100);

        _ = new AuditLog(_dir, 1 << 20);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }

    [Fact]
    public void The_fingerprint_is_eight_hex_digits_of_the_sha256_and_none_without_a_token()
    {
        // echo -n secret | sha256sum: 2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b
        Assert.Equal("2bb80d53", AuditLog.Fingerprint("secret"));
        Assert.Null(AuditLog.Fingerprint(null));
        Assert.Null(AuditLog.Fingerprint(""));
    }
}
