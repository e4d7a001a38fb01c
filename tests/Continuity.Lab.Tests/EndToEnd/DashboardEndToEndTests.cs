using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Xunit;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Continuity.Lab.Tests.EndToEnd;

/// <summary>
/// The web dashboard against a 3-node lab protecting ct-kv: headless Debian Chromium on the host opens the page of a
/// node that survives, sees the three members, sees a crash within seconds, and makes a planned switch with its button.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class DashboardEndToEndTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Chromium = "/usr/bin/chromium";
    private static readonly string[] Nodes = ["n1", "n2", "n3"];
    private readonly LabDriver _lab = new();
    private readonly string _root = Lab.FindRepoRoot() ?? throw new InvalidOperationException("repository root not found");
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(3) };
    private IPlaywright? _playwright;
    private IBrowser? _browser;

    public async Task InitializeAsync()
    {
        // xunit builds this class only for a test it runs: RootFact skips them all when not root, before this.
        if (!File.Exists(Chromium))
            throw new InvalidOperationException($"The dashboard tests need Debian's chromium at {Chromium}: run 'sudo deploy/install-deps.sh'.");
        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        SetDefaultExpectTimeout(30_000);
        _playwright = await Playwright.CreateAsync();
        _browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = Chromium, Headless = true });
    }

    public async Task DisposeAsync()
    {
        if (_browser is not null) await _browser.DisposeAsync();
        _playwright?.Dispose();
        _lab.Dispose();
        _http.Dispose();
    }

    private static string Url(string node) => $"http://198.18.0.1{node[1..]}:8558";

    private string Token => File.ReadAllText(Path.Combine(_lab.StateDir, "token")).Trim();

    private string WriteAppConfig()
    {
        var file = Path.Combine(_lab.StateDir, "kv.hocon");
        File.WriteAllText(file, $$"""
            continuity.apps.kv {
              command = ["{{_root}}/build/testserver/ct-kv", "--tcp", "7000", "--udp", "7001", "--ballast-mb", "0"]
              vip = "198.18.0.50/24"
              ports = ["tcp/7000", "udp/7001"]
              checkpoint-interval = 2s
              recovery = replay
            }
            """);
        return file;
    }

    private JsonElement? App(string node)
    {
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"{Url(node)}/v1/apps/kv");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
            using var response = _http.Send(request);
            if (!response.IsSuccessStatusCode) return null;
            return JsonDocument.Parse(response.Content.ReadAsStream()).RootElement.Clone();
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException) { return null; }
    }

    /// <summary>Waits until kv has a primary and at least <paramref name="standbys"/> ready standbys.</summary>
    private string WaitUntilProtected(IEnumerable<string> askNodes, int standbys, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            foreach (var node in askNodes)
            {
                if (App(node) is not { } view) continue;
                var primary = view.TryGetProperty("primary", out var p) ? p.GetString() : null;
                var ready = view.TryGetProperty("standbys", out var s) ? s.EnumerateArray().Count(x => x.GetProperty("ready").GetBoolean()) : 0;
                if (primary is not null && ready >= standbys) return primary;
            }
            Thread.Sleep(500);
        }
        throw new Xunit.Sdk.XunitException($"kv not protected by {standbys} ready standbys within {timeout.TotalSeconds} s\n" +
            string.Join("\n", Nodes.Select(n => $"--- {n}: {App(n)?.ToString() ?? "(no answer)"}")));
    }

    /// <summary>Opens the dashboard of <paramref name="node"/> from the host and logs in with the lab's token.</summary>
    private async Task<IPage> Open(string node)
    {
        var page = await _browser!.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 1000 } });
        page.Console += (_, m) => output.WriteLine($"browser console: {m.Type}: {m.Text}");
        await page.GotoAsync(Url(node) + "/");
        await page.Locator("#token").FillAsync(Token);
        await page.Locator("#login-submit").ClickAsync();
        await Expect(page.Locator("#board")).ToBeVisibleAsync();
        return page;
    }

    private void Up() =>
        Assert.True(_lab.Run("up", "--nodes", "3", "--config", WriteAppConfig(), "--timeout", "90") == 0, _lab.LastOutput + _lab.LastError);

    [RootFact]
    public async Task The_page_of_a_surviving_node_shows_three_nodes_then_the_primarys_crash_within_seconds()
    {
        Up();
        var primary = WaitUntilProtected(Nodes, 2, TimeSpan.FromSeconds(60));
        var asked = Nodes.First(n => n != primary);
        var page = await Open(asked);
        foreach (var n in Nodes)
            await Expect(page.Locator($"li.member[data-node='{n}']")).ToContainTextAsync("Up");
        await Expect(page.Locator("article.app[data-app='kv'] .primary")).ToHaveTextAsync(primary);

        var clock = Stopwatch.StartNew();
        _lab.MustRun("crash", primary);
        // Unreachable first, then downed and removed: either way no reachable member of that name is left.
        await Expect(page.Locator($"li.member[data-node='{primary}']:not(.unreachable)")).ToHaveCountAsync(0, new() { Timeout = 20_000 });
        output.WriteLine($"the page showed {primary}'s crash after {clock.Elapsed.TotalSeconds:F1} s");
        var survivors = Nodes.Where(n => n != primary).ToArray();
        await Expect(page.Locator("article.app[data-app='kv'] .primary"))
            .ToHaveTextAsync(new Regex($"^({string.Join('|', survivors)})$"), new() { Timeout = 60_000 });
        output.WriteLine($"new primary on the page after {clock.Elapsed.TotalSeconds:F1} s: {await page.Locator("article.app[data-app='kv'] .primary").TextContentAsync()}");
        await Expect(page.Locator("#timeline tbody")).ToContainTextAsync(primary + " → ");
        // Absent values (no alarm, say) are left out, never printed as the script's null or undefined.
        await Expect(page.Locator("article.app[data-app='kv']")).Not.ToContainTextAsync(new Regex(@"\b(null|undefined|NaN)\b"));
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Lab.FindRepoRoot()!, "build", "test-results", "dashboard-lab.png"), FullPage = true });
    }

    [RootFact]
    public async Task A_planned_switch_made_with_the_button_completes_and_the_panel_shows_the_new_primary()
    {
        Up();
        var primary = WaitUntilProtected(Nodes, 2, TimeSpan.FromSeconds(60));
        var target = Nodes.First(n => n != primary);
        var page = await Open(Nodes.Last(n => n != primary));
        var panel = page.Locator("article.app[data-app='kv']");
        await Expect(panel.Locator(".primary")).ToHaveTextAsync(primary);
        await Expect(panel.Locator($"select.switch-target option[value='{target}']")).ToHaveCountAsync(1);

        await panel.Locator("select.switch-target").SelectOptionAsync(target);
        await panel.Locator("button.switch").ClickAsync();
        await Expect(panel.Locator(".confirm")).ToContainTextAsync($"Switch kv from {primary} to {target}?");
        await panel.Locator("button.confirm-yes").ClickAsync();
        await Expect(panel.Locator(".result")).ToContainTextAsync("done", new() { Timeout = 90_000 });
        output.WriteLine(await panel.Locator(".result").TextContentAsync());
        await Expect(panel.Locator(".primary")).ToHaveTextAsync(target, new() { Timeout = 60_000 });
        await Expect(page.Locator("#timeline tbody")).ToContainTextAsync($"{primary} → {target}");
    }
}
