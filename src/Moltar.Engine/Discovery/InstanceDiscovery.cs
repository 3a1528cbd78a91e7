using Amazon.EC2;
using Amazon.EC2.Model;
using Amazon.Runtime;
using Moltar.Engine.Aws;

namespace Moltar.Engine.Discovery;

/// <summary>Finds instances with server-side filters, reading every page, and shapes them for people.</summary>
public sealed class InstanceDiscovery
{
    public const int PageSize = 1000;

    private readonly AwsSession _session;
    private readonly MoltarContext _context;
    private readonly Action<string> _verbose;

    public InstanceDiscovery(AwsSession session, MoltarContext context, Action<string>? verbose = null)
    {
        _session = session;
        _context = context;
        _verbose = verbose ?? (_ => { });
    }

    /// <summary>The filters DescribeInstances gets for a selection (never an empty list: EC2 rejects those).</summary>
    public static List<Filter> ServerFilters(InstanceSelection selection, MoltarContext context)
    {
        var filters = new List<Filter>();
        void Add(string name, params string[] values) => filters.Add(new Filter { Name = name, Values = values.ToList() });

        if (!string.IsNullOrEmpty(selection.Project)) Add($"tag:{context.TagName("Project")}", selection.Project!);
        if (!string.IsNullOrEmpty(selection.Environment)) Add($"tag:{context.TagName("Environment")}", selection.Environment!);
        if (!string.IsNullOrEmpty(selection.Cluster)) Add($"tag:{context.TagName("Cluster")}", selection.Cluster!);
        // EC2 ORs the values of one filter, so only one package narrows server-side; the rest are checked here.
        if (selection.Packages.Count > 0) Add($"tag:{context.TagName("Packages")}", $"*|{selection.Packages[0]}|*");
        foreach (var (key, values) in selection.Tags)
        {
            if (values.Length > 0) Add($"tag:{key}", values);
        }
        if (selection.States.Count > 0) Add("instance-state-name", selection.States.ToArray());
        return filters;
    }

    public async Task<IReadOnlyList<MoltarInstance>> FindAsync(InstanceSelection selection, CancellationToken cancellationToken)
    {
        var filters = ServerFilters(selection, _context);
        _verbose($"DescribeInstances in {_session.Region.SystemName}" +
                 (_session.EndpointUrl is null ? "" : $" at {_session.EndpointUrl}") +
                 $" with credentials from {_session.CredentialSource}; filters: " +
                 (filters.Count == 0 ? "(none)" : string.Join("; ", filters.Select(f => $"{f.Name}={string.Join(",", f.Values)}"))));

        var request = new DescribeInstancesRequest
        {
            Filters = filters.Count == 0 ? null : filters,
            MaxResults = PageSize,
        };
        var found = new List<MoltarInstance>();
        int pages = 0;
        using var client = _session.CreateEc2Client();
        try
        {
            await foreach (var page in client.Paginators.DescribeInstances(request).Responses.WithCancellation(cancellationToken).ConfigureAwait(false))
            {
                pages++;
                foreach (var reservation in page.Reservations ?? new List<Reservation>())
                {
                    foreach (var instance in reservation.Instances ?? new List<Instance>())
                        found.Add(ToMoltarInstance(instance));
                }
            }
        }
        catch (AmazonServiceException e)
        {
            throw ApiError(e);
        }
        catch (Exception e) when (e is not MoltarException && e is not OperationCanceledException)
        {
            throw new MoltarException("ApiUnreachable", "ConnectionError",
                $"EC2 in {_session.Region.SystemName}{(_session.EndpointUrl is null ? "" : $" at {_session.EndpointUrl}")} could not be reached: {e.Message}", e);
        }
        _verbose($"DescribeInstances read {pages} page(s), {found.Count} instance(s)");

        // Short ids are unique among everything the server-side filters returned, so a short id read from
        // one listing still names one instance when typed back as -Name with the same selection.
        var shortIds = ShortIds.Assign(found.Select(i => i.InstanceId));
        foreach (var instance in found)
            instance.ShortId = shortIds[instance.InstanceId];

        var terms = NameMatcher.Terms(selection.Name);
        IEnumerable<MoltarInstance> result = found
            .Where(i => selection.Packages.All(p => i.Packages.Contains(p, StringComparer.Ordinal)))
            .Where(i => NameMatcher.Matches(i, terms))
            .OrderBy(i => i.Name ?? "\uffff", StringComparer.OrdinalIgnoreCase)
            .ThenBy(i => i.InstanceId, StringComparer.Ordinal);
        if (selection.First)
            result = result.Take(1);
        return result.ToList();
    }

    private MoltarException ApiError(AmazonServiceException e)
    {
        string where = $"EC2 in {_session.Region.SystemName}{(_session.EndpointUrl is null ? "" : $" at {_session.EndpointUrl}")}";
        string requestId = string.IsNullOrEmpty(e.RequestId) ? "" : $" (request id {e.RequestId})";
        bool credentials = e.ErrorCode is "AuthFailure" or "UnrecognizedClientException" or "InvalidClientTokenId"
            or "ExpiredToken" or "RequestExpired" or "SignatureDoesNotMatch" or "MissingAuthenticationToken";
        if (credentials)
            return new MoltarException("AwsCredentialsRejected", "AuthenticationError",
                $"{where} refused the credentials from {_session.CredentialSource}: {e.ErrorCode}: {e.Message}{requestId}. " +
                "Refresh them (aws sso login, new keys, or a new session token) or pick another profile with -ProfileName.", e);
        return new MoltarException("ApiFailed", "InvalidOperation",
            $"{where} failed after retries: {e.ErrorCode ?? e.StatusCode.ToString()}: {e.Message}{requestId}.", e);
    }

    private MoltarInstance ToMoltarInstance(Instance instance)
    {
        var tags = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var tag in instance.Tags ?? new List<Tag>())
            tags[tag.Key] = tag.Value ?? "";
        string? Tag(string role)
        {
            if (tags.TryGetValue(_context.TagName(role), out var value)) return value;
            // Some accounts say App where others say Project.
            return role == "Project" && _context.TagName(role) == "Project" && tags.TryGetValue("App", out var app) ? app : null;
        }

        string? publicIp = NonEmpty(instance.PublicIpAddress);
        string? privateIp = NonEmpty(instance.PrivateIpAddress);
        return new MoltarInstance
        {
            InstanceId = instance.InstanceId,
            Name = Tag("Name"),
            Project = Tag("Project"),
            Environment = Tag("Environment"),
            Cluster = Tag("Cluster"),
            Packages = ParsePackages(Tag("Packages")),
            State = instance.State?.Name?.Value ?? "",
            InstanceType = instance.InstanceType?.Value,
            AvailabilityZone = instance.Placement?.AvailabilityZone,
            Region = _session.Region.SystemName,
            PrivateIpAddress = privateIp,
            PublicIpAddress = publicIp,
            PrivateDnsName = NonEmpty(instance.PrivateDnsName),
            PublicDnsName = NonEmpty(instance.PublicDnsName),
            Address = ChooseAddress(_context.AddressType, publicIp, privateIp),
            LaunchTime = instance.LaunchTime,
            Tags = tags,
        };
    }

    public static string? ChooseAddress(string addressType, string? publicIp, string? privateIp) => addressType switch
    {
        "Public" => publicIp,
        "Private" => privateIp,
        _ => publicIp ?? privateIp,
    };

    /// <summary>The Packages tag lists packages between bars: |app-web|app-worker|.</summary>
    public static string[] ParsePackages(string? tag) =>
        string.IsNullOrWhiteSpace(tag)
            ? Array.Empty<string>()
            : tag.Split(new[] { '|', ' ', ',' }, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static string? NonEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
