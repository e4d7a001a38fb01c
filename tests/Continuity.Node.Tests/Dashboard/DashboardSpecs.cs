using System.Net;
using System.Text.Json;
using Microsoft.Playwright;
using Xunit;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Continuity.Node.Tests.Dashboard;

/// <summary>
/// The dashboard in headless Chromium against a real node protecting a program that cannot start (as in
/// FailedAppStatusSpecs: the exec fails, so no VIP or firewall rule is ever installed). The program's arguments hold
/// markup, and the node repeats them in the application's alarm: the page must show that as text.
/// </summary>
public sealed class DashboardSpecs(ITestOutputHelper log) : IAsyncLifetime
{
    internal const string Markup = "<img src=x onerror=window.__pwned=1>";
    private readonly string _programDir = Directory.CreateTempSubdirectory("continuity-dashboard-prog-").FullName;
    private TestNode _node = null!;
    private IPlaywright _playwright = null!;
    private IBrowser _browser = null!;
    private IPage _page = null!;

    public async Task InitializeAsync()
    {
        SetDefaultExpectTimeout(30_000);
        _node = await TestNode.StartAsync("solo", extra: TestNode.UnstartableApp(_programDir, "198.18.99.51/24", "--name", Markup).Hocon);
        (_playwright, _browser) = await Browser.LaunchAsync();
        _page = await _browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 900 } });
        _page.Console += (_, m) => log.WriteLine($"browser console: {m.Type}: {m.Text}");
    }

    public async Task DisposeAsync()
    {
        await _browser.DisposeAsync();
        _playwright.Dispose();
        await _node.DisposeAsync();
        Directory.Delete(_programDir, recursive: true);
    }

    private async Task LogIn(string token)
    {
        await _page.GotoAsync(_node.Url + "/");
        await _page.Locator("#token").FillAsync(token);
        await _page.Locator("#login-submit").ClickAsync();
    }

    [Fact]
    public async Task The_page_asks_for_the_token_and_refuses_a_wrong_one_with_a_clear_message()
    {
        await _page.GotoAsync(_node.Url + "/");
        Assert.Equal(_node.Url + "/dashboard/", _page.Url);
        await Expect(_page.Locator("#login")).ToBeVisibleAsync();
        await Expect(_page.Locator("#board")).ToBeHiddenAsync();
        await Expect(_page.Locator("#node-origin")).ToHaveTextAsync($"127.0.0.1:{_node.ManagementPort}");

        await LogIn("not-the-token");
        await Expect(_page.Locator("#login-error")).ToContainTextAsync("Wrong token");
        await Expect(_page.Locator("#board")).ToBeHiddenAsync();
        Assert.Null(await _page.EvaluateAsync<string?>("sessionStorage.getItem('continuity.token')"));
    }

    [Fact]
    public async Task With_the_right_token_the_page_shows_the_node_as_up_with_its_roles_and_keeps_it_for_the_tab()
    {
        await LogIn(_node.Token);
        var member = _page.Locator("li.member[data-node='solo']");
        await Expect(member).ToContainTextAsync("Up");
        await Expect(member).ToContainTextAsync("roles: data");
        await Expect(member).ToContainTextAsync("reachable");
        await Expect(member).ToContainTextAsync("leader");
        await Expect(member).ToContainTextAsync("this node");
        await Expect(_page.Locator("#connection")).ToContainTextAsync("live");

        await _page.ReloadAsync();
        await Expect(_page.Locator("li.member[data-node='solo']")).ToContainTextAsync("Up");
        await Expect(_page.Locator("#login")).ToBeHiddenAsync();
    }

    [Fact]
    public async Task Markup_in_what_the_node_reports_is_shown_as_text_and_never_run()
    {
        await LogIn(_node.Token);
        var alarm = _page.Locator("article.app[data-app='kv'] .alarm");
        await Expect(alarm).ToContainTextAsync(Markup);
        await Expect(_page.Locator("article.app[data-app='kv'] .state")).ToHaveTextAsync("failed");
        Assert.Equal(0, await _page.Locator("img").CountAsync());
        Assert.True(await _page.EvaluateAsync<bool>("window.__pwned === undefined"));
    }

    [Fact]
    public async Task The_checkpoint_button_asks_for_confirmation_and_then_shows_the_nodes_answer()
    {
        await LogIn(_node.Token);
        var panel = _page.Locator("article.app[data-app='kv']");
        await Expect(panel.Locator(".state")).ToHaveTextAsync("failed");
        var posts = 0;
        _page.Request += (_, r) => { if (r.Method == "POST") posts++; };

        await panel.Locator("button.checkpoint").ClickAsync();
        await Expect(panel.Locator(".confirm")).ToBeVisibleAsync();
        await Expect(panel.Locator(".confirm")).ToContainTextAsync("Take a checkpoint of kv now?");
        await panel.Locator("button.confirm-no").ClickAsync();
        await Expect(panel.Locator(".confirm")).ToBeHiddenAsync();
        Assert.Equal(0, posts);

        await panel.Locator("button.checkpoint").ClickAsync();
        await panel.Locator("button.confirm-yes").ClickAsync();
        // The program never runs, so the node refuses: the page shows its reason, as the API gives it.
        var result = panel.Locator(".result");
        await Expect(result).ToHaveClassAsync(new System.Text.RegularExpressions.Regex("failed"));
        await Expect(result).ToContainTextAsync("Checkpoint kv");
        await Expect(result).ToContainTextAsync("refused (409)");
        log.WriteLine(await result.TextContentAsync());
        Assert.Equal(1, posts);
    }

    [Fact]
    public async Task The_static_files_need_no_token_but_every_data_call_does()
    {
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = new Uri(_node.Url) };
        using var root = await http.GetAsync("/");
        Assert.Equal(HttpStatusCode.Redirect, root.StatusCode);
        Assert.Equal("/dashboard/", root.Headers.Location?.ToString());
        foreach (var (path, type) in new[] { ("/dashboard/", "text/html"), ("/dashboard/dashboard.js", "text/javascript"), ("/dashboard/dashboard.css", "text/css") })
        {
            using var r = await http.GetAsync(path);
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Equal(type, r.Content.Headers.ContentType?.MediaType);
            Assert.Contains("script-src 'self'", r.Headers.GetValues("Content-Security-Policy").Single());
        }
        using var js = await http.GetAsync("/dashboard/dashboard.js");
        var script = await js.Content.ReadAsStringAsync();
        foreach (var sink in new[] { ".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval(" })
            Assert.DoesNotContain(sink, script);
        using var missing = await http.GetAsync("/dashboard/secrets.json");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        using var api = await http.GetAsync("/v1/cluster");
        Assert.Equal(HttpStatusCode.Unauthorized, api.StatusCode);
        Assert.Contains("bearer token", JsonDocument.Parse(await api.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());
    }
}
