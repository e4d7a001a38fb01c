using Microsoft.Playwright;
using Xunit;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Continuity.Node.Tests.Dashboard;

/// <summary>The dashboard keeps up with the cluster without a reload: members joining, and the node itself going away.</summary>
public sealed class DashboardLiveSpecs(ITestOutputHelper log) : IAsyncLifetime
{
    private readonly string _programDir = Directory.CreateTempSubdirectory("continuity-dashboard-prog-").FullName;
    private TestNode _n1 = null!;
    private TestNode? _n2;
    private IPlaywright _playwright = null!;
    private IBrowser _browser = null!;
    private IPage _page = null!;

    public async Task InitializeAsync()
    {
        SetDefaultExpectTimeout(30_000);
        // n1 protects a program that cannot start (no VIP or firewall is touched), so the picture has an application.
        _n1 = await TestNode.StartAsync("n1", extra: TestNode.UnstartableApp(_programDir, "198.18.99.52/24", "--port", "7000").Hocon);
        (_playwright, _browser) = await Browser.LaunchAsync();
        _page = await _browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 860 } });
        _page.Console += (_, m) => log.WriteLine($"browser console: {m.Type}: {m.Text}");
        await _page.GotoAsync(_n1.Url + "/dashboard/");
        await _page.Locator("#token").FillAsync(_n1.Token);
        await _page.Locator("#login-submit").ClickAsync();
        await Expect(_page.Locator("li.member[data-node='n1']")).ToContainTextAsync("Up");
    }

    public async Task DisposeAsync()
    {
        await _browser.DisposeAsync();
        _playwright.Dispose();
        if (_n2 is not null) await _n2.DisposeAsync();
        await _n1.DisposeAsync();
        Directory.Delete(_programDir, recursive: true);
    }

    [Fact]
    public async Task A_second_node_joining_shows_as_a_second_member_without_a_reload()
    {
        await Expect(_page.Locator("li.member")).ToHaveCountAsync(1);
        var navigations = 0;
        _page.FrameNavigated += (_, _) => navigations++;

        // A witness: it joins the cluster but hosts no application, so n1 stays the only data node.
        _n2 = await TestNode.StartAsync("n2", seed: _n1.ClusterPort, role: "witness");
        var n2 = _page.Locator("li.member[data-node='n2']");
        await Expect(n2).ToContainTextAsync("Up");
        await Expect(n2).ToContainTextAsync("roles: witness");
        await Expect(_page.Locator("li.member")).ToHaveCountAsync(2);
        Assert.Equal(0, navigations);

        // The picture in the README (docs/dashboard.png is a copy of it): two members and an application whose
        // program does not start. Written under build/, so a test run leaves the sources as they were.
        await Expect(_page.Locator("article.app[data-app='kv'] .state")).ToHaveTextAsync("failed");
        var png = Path.Combine(Browser.RepoRoot(), "build", "test-results", "dashboard.png");
        Directory.CreateDirectory(Path.GetDirectoryName(png)!);
        await _page.ScreenshotAsync(new PageScreenshotOptions { Path = png, FullPage = true });
        log.WriteLine($"screenshot: {png}");
    }

    [Fact]
    public async Task When_the_node_stops_answering_the_page_says_so_and_keeps_retrying()
    {
        await _n1.DisposeAsync();
        var connection = _page.Locator("#connection");
        await Expect(connection).ToContainTextAsync("unreachable since");
        await Expect(connection).ToContainTextAsync("retrying every second");
        // The last answer stays on the page, dimmed, rather than a blank page.
        await Expect(_page.Locator("li.member[data-node='n1']")).ToBeVisibleAsync();
        await Expect(_page.Locator("#board")).ToHaveClassAsync(new System.Text.RegularExpressions.Regex("stale"));
    }
}
