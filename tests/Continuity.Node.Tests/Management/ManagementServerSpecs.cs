using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Akka.Configuration;
using Continuity.Node.Management;
using Xunit;

namespace Continuity.Node.Tests.Management;

/// <summary>A real node (one-member cluster, real Kestrel on loopback) answering a hostile or careless client.</summary>
public sealed class ManagementServerSpecs : IAsyncLifetime
{
    private TestNode _node = null!;
    private string _dir = "";
    private HttpClient _http = null!;
    private string _token = "";

    public async Task InitializeAsync()
    {
        _node = await TestNode.StartAsync("solo");
        (_dir, _http, _token) = (_node.Dir, _node.Http, _node.Token);
        // The member is Up within a second or two; the tests below assume it.
        await _node.WaitForUp(1);
    }

    public async Task DisposeAsync() => await _node.DisposeAsync();

    private async Task<(HttpStatusCode, JsonElement)> Send(HttpMethod method, string path, string? body = null, string? token = "<valid>")
    {
        using var request = new HttpRequestMessage(method, path);
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token == "<valid>" ? _token : token);
        if (body is not null) request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    [Fact]
    public void The_token_file_is_created_readable_by_its_owner_only()
    {
        var mode = File.GetUnixFileMode(Path.Combine(_dir, "token"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, mode);
        Assert.Equal(64, _token.Length);
    }

    [Fact]
    public async Task Cluster_resource_lists_the_member_with_its_name_and_roles()
    {
        var (status, body) = await Send(HttpMethod.Get, "/v1/cluster");
        Assert.Equal(HttpStatusCode.OK, status);
        var member = Assert.Single(body.GetProperty("members").EnumerateArray());
        Assert.Equal("solo", member.GetProperty("node").GetString());
        Assert.Equal("Up", member.GetProperty("status").GetString());
        Assert.Equal(["data"], member.GetProperty("roles").EnumerateArray().Select(r => r.GetString()));
        Assert.Equal(body.GetProperty("self").GetString(), body.GetProperty("leader").GetString());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("wrong-token-wrong-token-wrong-token")]
    [InlineData("")]
    public async Task Requests_without_the_right_token_are_refused_and_change_nothing(string? token)
    {
        var (status, body) = await Send(HttpMethod.Post, "/v1/cluster/down", "{\"address\":\"solo\"}", token);
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Contains("bearer token", body.GetProperty("error").GetString());
        var (_, cluster) = await Send(HttpMethod.Get, "/v1/cluster");
        Assert.Equal("Up", cluster.GetProperty("members")[0].GetProperty("status").GetString());
    }

    [Theory]
    [InlineData("{not json", "not valid JSON")]
    [InlineData("[1,2]", "missing \"address\"")]
    [InlineData("{\"address\": 5}", "missing \"address\"")]
    public async Task Malformed_requests_get_400_with_the_reason(string body, string reason)
    {
        var (status, answer) = await Send(HttpMethod.Post, "/v1/cluster/down", body);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(reason, answer.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Down_of_an_unknown_member_gets_404_naming_it()
    {
        var (status, answer) = await Send(HttpMethod.Post, "/v1/cluster/down", "{\"address\":\"nobody\"}");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Contains("'nobody'", answer.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Unknown_resources_get_404()
    {
        var (status, answer) = await Send(HttpMethod.Get, "/v1/nothing-here");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Contains("/v1/nothing-here", answer.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Oversized_request_bodies_are_refused()
    {
        var huge = "{\"address\":\"" + new string('a', 200_000) + "\"}";
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/cluster/down");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _token);
        request.Content = new StringContent(huge, Encoding.UTF8, "application/json");
        using var response = await _http.SendAsync(request);
        Assert.False(response.IsSuccessStatusCode);
    }
}
