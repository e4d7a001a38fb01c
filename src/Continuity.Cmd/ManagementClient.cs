using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
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
    private readonly X509Certificate2Collection? _trust;
    // Why the node's certificate was refused, if it was: tells "untrusted certificate" from "not TLS at all".
    private volatile string? _certificateProblem;

    /// <param name="trust">Certificates to trust as roots (--ca): HTTPS when given, plain HTTP when null.</param>
    public ManagementClient(string endpoint, string token, string tokenFile, TimeSpan requestTimeout, X509Certificate2Collection? trust = null)
    {
        _endpoint = endpoint;
        _tokenFile = tokenFile;
        _requestTimeout = requestTimeout;
        _trust = trust;
        var handler = new SocketsHttpHandler
        {
            // A dead host should fail fast with "unreachable" rather than hang an operator's shell.
            ConnectTimeout = TimeSpan.FromSeconds(5),
            UseProxy = false,
        };
        if (trust is not null) handler.SslOptions.RemoteCertificateValidationCallback = Validate;
        // Per-request timeouts are applied with linked tokens because `cluster tail` must stay open forever.
        _http = new HttpClient(handler)
        {
            BaseAddress = new Uri($"{(trust is null ? "http" : "https")}://{endpoint}/"), Timeout = Timeout.InfiniteTimeSpan,
        };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        _http.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
    }

    public Task<NodeReply> GetAsync(string path, CancellationToken ct) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Get, path), ct);

    /// <param name="timeout">How long to wait for the answer, when longer than usual (a checkpoint answers once dumped).</param>
    public Task<NodeReply> PostAsync(string path, object? body, CancellationToken ct, TimeSpan? timeout = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent(body is null ? "{}" : JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"),
        };
        return SendAsync(request, ct, timeout);
    }

    private async Task<NodeReply> SendAsync(HttpRequestMessage request, CancellationToken ct, TimeSpan? timeoutOverride = null)
    {
        var limit = timeoutOverride ?? _requestTimeout;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(limit);
        try
        {
            using var response = await _http.SendAsync(request, timeout.Token);
            var raw = await response.Content.ReadAsStringAsync(timeout.Token);
            EnsureSuccess(response, raw);
            return new NodeReply(ParseOrNull(raw), raw);
        }
        catch (Exception ex) when (ex is not CmdException)
        {
            var translated = await TranslateAsync(ex, ct, limit);
            if (translated is null) throw;
            throw translated;
        }
    }

    /// <summary>The certificates of a --ca file, or a usage error naming the problem and the fix.</summary>
    public static X509Certificate2Collection LoadTrust(string file)
    {
        const string fix = "give the certificate the node serves (continuity.management.tls.certificate) or the CA that signed it, in PEM";
        if (!File.Exists(file)) throw new CmdException(ExitCodes.BadUsage, $"--ca {file}: no such file: {fix}");
        var trust = new X509Certificate2Collection();
        try
        {
            trust.ImportFromPemFile(file);
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new CmdException(ExitCodes.BadUsage, $"--ca {file} cannot be read ({e.Message}): {fix}");
        }
        if (trust.Count == 0) throw new CmdException(ExitCodes.BadUsage, $"--ca {file} holds no certificate (-----BEGIN CERTIFICATE-----): {fix}");
        return trust;
    }

    /// <summary>The node's certificate must chain to a --ca certificate and name the host asked for; nothing else is trusted.</summary>
    private bool Validate(object sender, X509Certificate? certificate, X509Chain? _, SslPolicyErrors errors)
    {
        if (certificate is null) { _certificateProblem = "the node sent no certificate"; return false; }
        if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
        {
            _certificateProblem = $"it does not name {_endpoint[.._endpoint.LastIndexOf(':')]} (its subject: {certificate.Subject}); " +
                                  "the certificate needs a subject alternative name with the address the console uses";
            return false;
        }
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(_trust!);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var presented = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        if (chain.Build(presented)) return true;
        _certificateProblem = $"{certificate.Subject} is not signed by a certificate of --ca ({string.Join(", ", chain.ChainStatus.Select(s => s.Status))})";
        return false;
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
        catch (Exception ex) when (ex is not CmdException)
        {
            var translated = await TranslateAsync(ex, ct, _requestTimeout);
            if (translated is null) throw;
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

    /// <summary>
    /// Maps a failure while connecting to what went wrong and how to fix it: HTTP spoken to an HTTPS port and the
    /// reverse (the usual mistake once TLS is configured), a certificate not trusted, or the node unreachable.
    /// </summary>
    private async Task<CmdException?> TranslateAsync(Exception ex, CancellationToken userToken, TimeSpan limit)
    {
        if (ex is HttpRequestException && Find<AuthenticationException>(ex) is not null)
            return _certificateProblem is { } problem
                ? new CmdException(ExitCodes.Unreachable, $"the node at {_endpoint} serves a certificate the console does not trust: {problem}. " +
                                                          "Pass --ca FILE with the node's certificate (continuity.management.tls.certificate) or the CA that signed it")
                : new CmdException(ExitCodes.Unreachable, $"the node at {_endpoint} did not answer the TLS handshake: it serves plain HTTP " +
                                                          "(no continuity.management.tls on that node). Drop --ca (and CONTINUITY_CA) to talk to it");
        if (_trust is null && ex is HttpRequestException { InnerException: not SocketException } && await SpeaksTlsAsync(userToken))
            return new CmdException(ExitCodes.Unreachable, $"the node at {_endpoint} serves HTTPS (continuity.management.tls is set there) and the console " +
                                                           "spoke plain HTTP: pass --ca FILE (or set CONTINUITY_CA) with the node's certificate or the CA that signed it");
        return Translate(ex, userToken, limit);
    }

    private static T? Find<T>(Exception? e) where T : Exception
    {
        for (; e is not null; e = e.InnerException)
            if (e is T t) return t;
        return null;
    }

    /// <summary>Whether the endpoint completes a TLS handshake (any certificate): asked only after plain HTTP failed.</summary>
    private async Task<bool> SpeaksTlsAsync(CancellationToken ct)
    {
        using var probe = CancellationTokenSource.CreateLinkedTokenSource(ct);
        probe.CancelAfter(TimeSpan.FromSeconds(3));
        try
        {
            var colon = _endpoint.LastIndexOf(':');
            using var tcp = new TcpClient();
            await tcp.ConnectAsync(_endpoint[..colon].Trim('[', ']'), int.Parse(_endpoint[(colon + 1)..]), probe.Token);
            await using var tls = new SslStream(tcp.GetStream(), false, (_, _, _, _) => true);
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "continuity-probe" }, probe.Token);
            return true;
        }
        catch (Exception)
        {
            return false;
        }
    }

    /// <summary>Maps transport failures to "unreachable"; user cancellation and our own exceptions pass through.</summary>
    private CmdException? Translate(Exception ex, CancellationToken userToken, TimeSpan? limit = null)
    {
        switch (ex)
        {
            case CmdException:
                return null;
            case OperationCanceledException when userToken.IsCancellationRequested:
                return null;
            case OperationCanceledException:
                return new NodeUnreachableException(_endpoint, $"no answer within {(limit ?? _requestTimeout).TotalSeconds:0}s");
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
