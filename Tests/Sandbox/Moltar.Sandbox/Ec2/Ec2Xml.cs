using System.Globalization;
using System.Text;
using System.Xml;

namespace Moltar.Sandbox.Ec2;

/// <summary>
/// Writes responses the way EC2 shapes them (namespace http://ec2.amazonaws.com/doc/2016-11-15/,
/// pretty-printed, elements in EC2's order). Absent optional values (ipAddress, tagSet) are omitted.
/// </summary>
public static class Ec2Xml
{
    public const string Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/";

    private static readonly XmlWriterSettings Settings = new()
    {
        Encoding = new UTF8Encoding(false),
        Indent = true,
        IndentChars = "    ",
        NewLineChars = "\n",
        CloseOutput = false,
    };

    private static readonly XmlWriterSettings ErrorSettings = new()
    {
        Encoding = new UTF8Encoding(false),
        Indent = false,
        CloseOutput = false,
    };

    public static void WriteDescribeInstances(Stream output, string requestId, DescribeInstancesPage page)
    {
        using var w = XmlWriter.Create(output, Settings);
        w.WriteStartDocument();
        w.WriteStartElement("DescribeInstancesResponse", Namespace);
        w.WriteElementString("requestId", requestId);
        w.WriteStartElement("reservationSet");
        var instances = page.Instances;
        for (var i = 0; i < instances.Count;)
        {
            var first = instances[i];
            w.WriteStartElement("item");
            w.WriteElementString("reservationId", first.ReservationId);
            w.WriteElementString("ownerId", first.OwnerId);
            w.WriteStartElement("groupSet");
            w.WriteEndElement();
            w.WriteStartElement("instancesSet");
            for (var launchIndex = 0; i < instances.Count && instances[i].ReservationId == first.ReservationId; i++, launchIndex++)
            {
                WriteInstance(w, instances[i], launchIndex);
            }
            w.WriteEndElement(); // instancesSet
            w.WriteEndElement(); // item
        }
        w.WriteEndElement(); // reservationSet
        if (page.NextToken is not null)
        {
            w.WriteElementString("nextToken", page.NextToken);
        }
        w.WriteEndElement();
        w.WriteEndDocument();
    }

    private static void WriteInstance(XmlWriter w, Ec2Instance instance, int launchIndex)
    {
        var stopped = instance.State is "stopped" or "stopping";
        w.WriteStartElement("item");
        w.WriteElementString("instanceId", instance.InstanceId);
        w.WriteElementString("imageId", instance.ImageId);
        w.WriteStartElement("instanceState");
        w.WriteElementString("code", instance.StateCode.ToString(CultureInfo.InvariantCulture));
        w.WriteElementString("name", instance.State);
        w.WriteEndElement();
        w.WriteElementString("privateDnsName", instance.PrivateDnsName);
        w.WriteElementString("dnsName", instance.PublicDnsName);
        w.WriteElementString("reason", stopped
            ? "User initiated (" + instance.LaunchTime.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + " GMT)"
            : "");
        w.WriteElementString("amiLaunchIndex", launchIndex.ToString(CultureInfo.InvariantCulture));
        w.WriteStartElement("productCodes");
        w.WriteEndElement();
        w.WriteElementString("instanceType", instance.InstanceType);
        w.WriteElementString("launchTime", instance.LaunchTime.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture));
        w.WriteStartElement("placement");
        w.WriteElementString("availabilityZone", instance.AvailabilityZone);
        w.WriteElementString("groupName", "");
        w.WriteElementString("tenancy", "default");
        w.WriteEndElement();
        w.WriteStartElement("monitoring");
        w.WriteElementString("state", "disabled");
        w.WriteEndElement();
        if (instance.PrivateIpAddress is not null)
        {
            w.WriteElementString("privateIpAddress", instance.PrivateIpAddress);
        }
        if (instance.PublicIpAddress is not null)
        {
            w.WriteElementString("ipAddress", instance.PublicIpAddress);
        }
        w.WriteStartElement("groupSet");
        w.WriteEndElement();
        if (stopped)
        {
            w.WriteStartElement("stateReason");
            w.WriteElementString("code", "Client.UserInitiatedShutdown");
            w.WriteElementString("message", "Client.UserInitiatedShutdown: User initiated shutdown");
            w.WriteEndElement();
        }
        w.WriteElementString("architecture", "x86_64");
        w.WriteElementString("rootDeviceType", "ebs");
        w.WriteElementString("rootDeviceName", "/dev/sda1");
        w.WriteStartElement("blockDeviceMapping");
        w.WriteEndElement();
        w.WriteElementString("virtualizationType", "hvm");
        w.WriteElementString("clientToken", "");
        if (instance.Tags.Count > 0)
        {
            w.WriteStartElement("tagSet");
            foreach (var tag in instance.Tags)
            {
                w.WriteStartElement("item");
                w.WriteElementString("key", tag.Key);
                w.WriteElementString("value", tag.Value);
                w.WriteEndElement();
            }
            w.WriteEndElement();
        }
        w.WriteElementString("hypervisor", "xen");
        w.WriteStartElement("networkInterfaceSet");
        w.WriteEndElement();
        w.WriteElementString("ebsOptimized", "false");
        w.WriteElementString("enaSupport", "true");
        w.WriteEndElement(); // item
    }

    public static void WriteDescribeRegions(Stream output, string requestId, IReadOnlyList<Ec2Region> regions)
    {
        using var w = XmlWriter.Create(output, Settings);
        w.WriteStartDocument();
        w.WriteStartElement("DescribeRegionsResponse", Namespace);
        w.WriteElementString("requestId", requestId);
        w.WriteStartElement("regionInfo");
        foreach (var region in regions)
        {
            w.WriteStartElement("item");
            w.WriteElementString("regionName", region.Name);
            w.WriteElementString("regionEndpoint", region.Endpoint);
            w.WriteElementString("optInStatus", region.OptInStatus);
            w.WriteEndElement();
        }
        w.WriteEndElement();
        w.WriteEndElement();
        w.WriteEndDocument();
    }

    public static void WriteDescribeTags(Stream output, string requestId, DescribeTagsPage page)
    {
        using var w = XmlWriter.Create(output, Settings);
        w.WriteStartDocument();
        w.WriteStartElement("DescribeTagsResponse", Namespace);
        w.WriteElementString("requestId", requestId);
        w.WriteStartElement("tagSet");
        foreach (var tag in page.Tags)
        {
            w.WriteStartElement("item");
            w.WriteElementString("resourceId", tag.ResourceId);
            w.WriteElementString("resourceType", tag.ResourceType);
            w.WriteElementString("key", tag.Key);
            w.WriteElementString("value", tag.Value);
            w.WriteEndElement();
        }
        w.WriteEndElement();
        if (page.NextToken is not null)
        {
            w.WriteElementString("nextToken", page.NextToken);
        }
        w.WriteEndElement();
        w.WriteEndDocument();
    }

    /// <summary>EC2's error document: Response/Errors/Error(Code, Message), RequestID. No namespace.</summary>
    public static void WriteError(Stream output, string requestId, Ec2Error error)
    {
        using var w = XmlWriter.Create(output, ErrorSettings);
        w.WriteStartDocument();
        w.WriteStartElement("Response");
        w.WriteStartElement("Errors");
        w.WriteStartElement("Error");
        w.WriteElementString("Code", error.Code);
        w.WriteElementString("Message", error.Message);
        w.WriteEndElement();
        w.WriteEndElement();
        w.WriteElementString("RequestID", requestId);
        w.WriteEndElement();
        w.WriteEndDocument();
    }
}
