using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Continuity.Cmd;

/// <summary>Failures that map to a documented exit code; the message is what the operator sees.</summary>
internal class CmdException(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

internal sealed class NodeUnreachableException(string endpoint, string reason)
    : CmdException(ExitCodes.Unreachable,
        $"cannot reach node at {endpoint}: {reason}. Is continuity-node running there? Check --node or CONTINUITY_NODE.");

internal sealed class AuthRefusedException(string tokenFile)
    : CmdException(ExitCodes.AuthRefused, $"the node refused the token from {tokenFile}: check --token-file");

internal sealed class CommandFailedException(string message) : CmdException(ExitCodes.CommandFailed, message);

internal static class ExitCodes
{
    public const int Ok = 0;
    public const int CommandFailed = 1;
    public const int BadUsage = 2;
    public const int Unreachable = 3;
    public const int AuthRefused = 4;
}

/// <summary>A node's answer: the parsed body plus the raw text, so --json can print exactly what the node said.</summary>
internal sealed record NodeReply(JsonNode? Body, string Raw);

/// <summary>Thin client for a node's management HTTP API.</summary>
internal sealed class ManagementClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly string _endpoint;
    private readonly string _tokenFile;
    private readonly TimeSpan _requestTimeout;

    public ManagementClient(string endpoint, string token, string tokenFile, TimeSpan requestTimeout)
    {
        _endpoint = endpoint;
        _tokenFile = tokenFile;
        _requestTimeout = requestTimeout;
        var handler = new SocketsHttpHandler
        {
            // A dead host should fail fast with "unreachable" rather than hang an operator's shell.
            ConnectTimeout = TimeSpan.FromSeconds(5),
            UseProxy = false,
        };
        // Per-request timeouts are applied with linked tokens because `cluster tail` must stay open forever.
        _http = new HttpClient(handler) { BaseAddress = new Uri($"http://{endpoint}/"), Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        _http.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
    }

    public Task<NodeReply> GetAsync(string path, CancellationToken ct) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Get, path), ct);

    public Task<NodeReply> PostAsync(string path, object? body, CancellationToken ct)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent(body is null ? "{}" : JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"),
        };
        return SendAsync(request, ct);
    }

    private async Task<NodeReply> SendAsync(HttpRequestMessage request, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_requestTimeout);
        try
        {
            using var response = await _http.SendAsync(request, timeout.Token);
            var raw = await response.Content.ReadAsStringAsync(timeout.Token);
            EnsureSuccess(response, raw);
            return new NodeReply(ParseOrNull(raw), raw);
        }
        catch (Exception ex) when (Translate(ex, ct) is { } translated)
        {
            throw translated;
        }
    }

    /// <summary>
    /// Reads the newline-delimited JSON stream line by line as it arrives; ends when the node closes
    /// the connection or <paramref name="ct"/> is cancelled (Ctrl-C).
    /// </summary>
    public async IAsyncEnumerable<string> StreamLinesAsync(string path, [EnumeratorCancellation] CancellationToken ct)
    {
        HttpResponseMessage response;
        StreamReader reader;
        try
        {
            using var connect = CancellationTokenSource.CreateLinkedTokenSource(ct);
            connect.CancelAfter(_requestTimeout);
            response = await _http.SendAsync(new HttpRequestMessage(HttpMethod.Get, path),
                HttpCompletionOption.ResponseHeadersRead, connect.Token);
            if (!response.IsSuccessStatusCode)
            {
                var raw = await response.Content.ReadAsStringAsync(connect.Token);
                response.Dispose();
                EnsureSuccess(response, raw);
            }
            reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct), Encoding.UTF8);
        }
        catch (Exception ex) when (Translate(ex, ct) is { } translated)
        {
            throw translated;
        }

        using (response)
        using (reader)
        {
            while (true)
            {
                string? line;
                try
                {
                    line = await reader.ReadLineAsync(ct);
                }
                catch (Exception ex) when (Translate(ex, ct) is { } translated)
                {
                    throw translated;
                }
                if (line is null) yield break;
                if (line.Length > 0) yield return line;
            }
        }
    }

    private void EnsureSuccess(HttpResponseMessage response, string raw)
    {
        if (response.IsSuccessStatusCode) return;
        if (response.StatusCode == HttpStatusCode.Unauthorized) throw new AuthRefusedException(_tokenFile);
        var message = (ParseOrNull(raw) as JsonObject)?["error"]?.GetValue<string>();
        throw new CommandFailedException(message ?? $"the node answered {(int)response.StatusCode} {response.ReasonPhrase}");
    }

    /// <summary>Maps transport failures to "unreachable"; user cancellation and our own exceptions pass through.</summary>
    private CmdException? Translate(Exception ex, CancellationToken userToken)
    {
        switch (ex)
        {
            case CmdException:
                return null;
            case OperationCanceledException when userToken.IsCancellationRequested:
                return null;
            case OperationCanceledException:
                return new NodeUnreachableException(_endpoint, $"no answer within {_requestTimeout.TotalSeconds:0}s");
            case HttpRequestException { InnerException: SocketException se }:
                return new NodeUnreachableException(_endpoint, se.Message);
            case HttpRequestException or IOException:
                return new NodeUnreachableException(_endpoint, ex.InnerException?.Message ?? ex.Message);
            default:
                return null;
        }
    }

    private static JsonNode? ParseOrNull(string raw)
    {
        if (string.IsNullOrWhiteSpace(raw)) return null;
        try
        {
            return JsonNode.Parse(raw);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public void Dispose() => _http.Dispose();
}
