using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Continuity.Cmd.Tests;

/// <summary>
/// A real HTTP server on 127.0.0.1 serving canned management-API answers and checking the bearer
/// token, so the console is exercised through its actual HTTP stack.
/// </summary>
public sealed class FakeNode : IAsyncDisposable
{
    public const string Token = "s3cret-token";

    private readonly HttpListener _listener = new();
    private readonly Dictionary<(string Method, string Path), Func<HttpListenerContext, Task>> _routes = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public ConcurrentQueue<(string Method, string Path, string Body)> Requests { get; } = new();
    public int Port { get; }
    public string Endpoint => $"127.0.0.1:{Port}";

    public FakeNode()
    {
        // HttpListener needs a concrete port; take one the OS just handed out. Retry covers the small race.
        for (var attempt = 0; ; attempt++)
        {
            Port = FreePort();
            _listener.Prefixes.Clear();
            _listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
            try
            {
                _listener.Start();
                break;
            }
            catch (HttpListenerException) when (attempt < 5)
            {
            }
        }
        _loop = Task.Run(AcceptLoop);
    }

    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    public FakeNode Json(string method, string path, string json, int status = 200)
    {
        _routes[(method, path)] = ctx => Reply(ctx, status, json);
        return this;
    }

    public FakeNode Handle(string method, string path, Func<HttpListenerContext, Task> handler)
    {
        _routes[(method, path)] = handler;
        return this;
    }

    public static async Task Reply(HttpListenerContext ctx, int status, string json)
    {
        var bytes = Encoding.UTF8.GetBytes(json);
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        ctx.Response.ContentLength64 = bytes.Length;
        await ctx.Response.OutputStream.WriteAsync(bytes);
        ctx.Response.Close();
    }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext ctx;
            try
            {
                ctx = await _listener.GetContextAsync();
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (HttpListenerException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            _ = Task.Run(() => Serve(ctx));
        }
    }

    private async Task Serve(HttpListenerContext ctx)
    {
        try
        {
            var body = await new StreamReader(ctx.Request.InputStream).ReadToEndAsync();
            var path = ctx.Request.Url!.AbsolutePath;
            Requests.Enqueue((ctx.Request.HttpMethod, path, body));
            if (ctx.Request.Headers["Authorization"] != $"Bearer {Token}")
            {
                await Reply(ctx, 401, """{"error":"invalid token"}""");
                return;
            }
            if (_routes.TryGetValue((ctx.Request.HttpMethod, path), out var handler))
                await handler(ctx);
            else
                await Reply(ctx, 404, $$"""{"error":"no route {{path}}"}""");
        }
        catch (Exception) when (_stop.IsCancellationRequested)
        {
        }
        catch (HttpListenerException)
        {
            // The console hung up (Ctrl-C during tail); nothing to answer.
        }
        catch (IOException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        _listener.Close();
        try
        {
            await _loop.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception)
        {
            // Shutdown noise must not fail a test that already passed.
        }
    }
}
