using Moltar.Sandbox.Ec2;

namespace Moltar.Sandbox;

/// <summary>One generated name: Project, Environment, Cluster and the Name tag (project-environment-cluster-n).</summary>
public sealed record GeneratedName(string Project, string Environment, string Cluster, string Name);

/// <summary>
/// Generates the instances of --hosts and --synthetic. The i-th generated instance (hosts first,
/// then synthetic ones) gets Environment = environments[i % E] and Cluster = clusters[(i / E) % C],
/// so the first E*C instances cover every combination; n counts per combination from 1:
/// demo-production-web-1, demo-staging-web-1, demo-production-jobs-1, ...
/// </summary>
public sealed class InstanceGenerator(string project, IReadOnlyList<string> environments, IReadOnlyList<string> clusters)
{
    public const string PackagesTag = "|demo-app|";
    private readonly Dictionary<(string, string), int> counts = new();
    private int index;

    public GeneratedName Next()
    {
        var environment = environments[index % environments.Count];
        var cluster = clusters[index / environments.Count % clusters.Count];
        index++;
        var key = (environment, cluster);
        var n = counts.GetValueOrDefault(key) + 1;
        counts[key] = n;
        return new GeneratedName(project, environment, cluster, $"{project}-{environment}-{cluster}-{n}");
    }

    /// <summary>The instance of an sshd host (CONTRACT.md): public = private address = the loopback address.</summary>
    public static Ec2Instance ForHost(GeneratedName name, string address) => new()
    {
        InstanceId = Ec2Defaults.InstanceIdFor(name.Name),
        ReservationId = Ec2Defaults.ReservationIdFor(name.Name),
        State = "running",
        InstanceType = "t3.micro",
        AvailabilityZone = "us-east-1a",
        PrivateIpAddress = address,
        PublicIpAddress = address,
        PrivateDnsName = Ec2Defaults.PrivateDnsNameFor(address),
        PublicDnsName = "",
        LaunchTime = Ec2Defaults.LaunchTime,
        Tags = Tags(name),
    };

    /// <summary>
    /// A synthetic instance (nothing listens behind it): private address 10.x.y.z, no public address,
    /// four instances per reservation, running.
    /// </summary>
    public static Ec2Instance Synthetic(GeneratedName name, int syntheticIndex)
    {
        var address = $"10.{syntheticIndex / (256 * 254) % 256}.{syntheticIndex / 254 % 256}.{syntheticIndex % 254 + 1}";
        var zone = "us-east-1" + (char)('a' + syntheticIndex % 3);
        return new Ec2Instance
        {
            InstanceId = Ec2Defaults.InstanceIdFor(name.Name),
            ReservationId = Ec2Defaults.ReservationIdFor($"{name.Project}-synthetic-{syntheticIndex / 4}"),
            State = "running",
            InstanceType = "t3.micro",
            AvailabilityZone = zone,
            PrivateIpAddress = address,
            PublicIpAddress = null,
            PrivateDnsName = Ec2Defaults.PrivateDnsNameFor(address),
            PublicDnsName = "",
            LaunchTime = Ec2Defaults.LaunchTime,
            Tags = Tags(name),
        };
    }

    private static IReadOnlyList<Ec2Tag> Tags(GeneratedName name) =>
    [
        new("Project", name.Project),
        new("Environment", name.Environment),
        new("Cluster", name.Cluster),
        new("Name", name.Name),
        new("Packages", PackagesTag),
    ];
}
