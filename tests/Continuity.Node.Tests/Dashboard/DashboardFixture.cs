using Microsoft.Playwright;

namespace Continuity.Node.Tests.Dashboard;

/// <summary>Headless Debian Chromium driven by Playwright; Playwright's own browsers are never downloaded.</summary>
internal static class Browser
{
    public const string Chromium = "/usr/bin/chromium";

    public static async Task<(IPlaywright, IBrowser)> LaunchAsync()
    {
        if (!File.Exists(Chromium))
            throw new InvalidOperationException(
                $"The dashboard's browser tests need Debian's chromium at {Chromium}, which is not installed: run 'sudo deploy/install-deps.sh' (or 'apt-get install chromium').");
        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        var playwright = await Playwright.CreateAsync();
        // Playwright passes --no-sandbox itself (chromiumSandbox is off by default), which running as root needs.
        var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = Chromium, Headless = true });
        return (playwright, browser);
    }

    /// <summary>The repository's root (where Continuity.Akka.sln is), for docs/dashboard.png.</summary>
    public static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Continuity.Akka.sln"))) return d.FullName;
        throw new DirectoryNotFoundException("Continuity.Akka.sln not found above " + AppContext.BaseDirectory);
    }
}
