using System.Reflection;
using Microsoft.AspNetCore.Http;

namespace Continuity.Node.Management;

/// <summary>
/// The web dashboard's static files (one page, one script, one style sheet), embedded in this assembly and served
/// at /dashboard/ without the token: they hold no data. Every data call the page makes carries the bearer token.
/// </summary>
public static class DashboardFiles
{
    public const string Prefix = "/dashboard/";

    private static readonly Dictionary<string, (byte[] Body, string ContentType)> Files = Load();

    private static Dictionary<string, (byte[], string)> Load()
    {
        var asm = typeof(DashboardFiles).Assembly;
        var files = new Dictionary<string, (byte[], string)>(StringComparer.Ordinal);
        foreach (var name in asm.GetManifestResourceNames().Where(n => n.StartsWith("dashboard/", StringComparison.Ordinal)))
        {
            using var s = asm.GetManifestResourceStream(name)!;
            using var ms = new MemoryStream();
            s.CopyTo(ms);
            var file = name["dashboard/".Length..];
            var type = Path.GetExtension(file) switch
            {
                ".html" => "text/html; charset=utf-8",
                ".js" => "text/javascript; charset=utf-8",
                ".css" => "text/css; charset=utf-8",
                ".png" => "image/png",
                _ => "application/octet-stream",
            };
            files[file] = (ms.ToArray(), type);
        }
        return files;
    }

    /// <summary>Answers "/", "/dashboard" and "/dashboard/..." GETs; returns false for every other request (the API).</summary>
    public static async Task<bool> TryServe(HttpContext ctx)
    {
        var path = ctx.Request.Path.Value ?? "";
        if (!HttpMethods.IsGet(ctx.Request.Method) && !HttpMethods.IsHead(ctx.Request.Method)) return false;
        if (path is "/" or "/dashboard")
        {
            ctx.Response.Redirect(Prefix);
            return true;
        }
        if (!path.StartsWith(Prefix, StringComparison.Ordinal)) return false;

        var file = path[Prefix.Length..];
        if (file.Length == 0) file = "index.html";
        var headers = ctx.Response.Headers;
        // The page shows data from the cluster (names, alarms, program output): the script inserts it as text, and
        // this policy is the second fence: no inline script, no other origin, no framing.
        headers.ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";
        headers.XContentTypeOptions = "nosniff";
        headers.CacheControl = "no-cache";
        headers["Referrer-Policy"] = "no-referrer";
        if (!Files.TryGetValue(file, out var f))
        {
            ctx.Response.StatusCode = StatusCodes.Status404NotFound;
            ctx.Response.ContentType = "text/plain; charset=utf-8";
            await ctx.Response.WriteAsync($"no such dashboard file: {file}");
            return true;
        }
        ctx.Response.ContentType = f.ContentType;
        ctx.Response.ContentLength = f.Body.Length;
        if (HttpMethods.IsGet(ctx.Request.Method)) await ctx.Response.Body.WriteAsync(f.Body, ctx.RequestAborted);
        return true;
    }
}
